"""File names from upload Content-Disposition headers: percent-encoding undone only where
the name says it was applied (pure functions, table-driven)."""
import pytest

from server.http.form_names import decode_form_filename, header_filename

DECODE = [
    # (what the client sent in filename="...", the name meant)
    ("photo.jpg", "photo.jpg"),
    # aiohttp's client: quote(name, "") of the UTF-8 bytes
    ("relat%C3%B3rio.pdf", "relatório.pdf"),
    ("relat%c3%b3rio.pdf", "relatório.pdf"),
    ("100%25.pdf", "100%.pdf"),
    ("a%20b%2Bc.pdf", "a b+c.pdf"),
    ("%E2%82%AC%20rate.png", "€ rate.png"),
    # browsers and curl: raw UTF-8, only '"', CR, LF escaped
    ("relatório.pdf", "relatório.pdf"),
    ("relatório %22final%22.pdf", 'relatório "final".pdf'),
    ("a%0D%0Ab.pdf", "a\r\nb.pdf"),
    ("ação%41.pdf", "ação%41.pdf"),
    # literal: a '%' that escapes nothing, or bytes that are not UTF-8
    ("100%.pdf", "100%.pdf"),
    ("100% %22off%22.pdf", '100% "off".pdf'),
    ("50%FF.pdf", "50%FF.pdf"),
    ("%C3%28.png", "%C3%28.png"),
    ("%.png", "%.png"),
    ("%2.png", "%2.png"),
    ("%ZZ.png", "%ZZ.png"),
    ("", ""),
]


@pytest.mark.parametrize("sent,meant", DECODE, ids=[repr(s) for s, _ in DECODE])
def test_decode_form_filename(sent, meant):
    assert decode_form_filename(sent) == meant


HEADERS = [
    # (Content-Disposition, the file name)
    ('form-data; name="file"; filename="relat%C3%B3rio.pdf"', "relatório.pdf"),
    ('form-data; name="file"; filename="100%.pdf"', "100%.pdf"),
    # filename* says its own encoding and wins, whatever the plain name says
    ("form-data; name=file; filename=\"x%41.pdf\"; filename*=UTF-8''a%25b%C3%A7.pdf",
     "a%bç.pdf"),
    ("attachment; filename*=UTF-8''na%C3%AFve.png", "naïve.png"),
    ('attachment; filename="a\\"b.png"', 'a"b.png'),
    ('form-data; name="file"', None),
    (";;;===", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize("header,name", HEADERS, ids=[repr(h) for h, _ in HEADERS])
def test_header_filename(header, name):
    assert header_filename(header) == name
