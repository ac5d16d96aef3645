import re
import unicodedata
from email.message import Message
from email.utils import collapse_rfc2231_value
from urllib.parse import unquote

import pytest

from server.http.disposition import (
    content_disposition,
    is_unsafe_inline,
    sanitize_filename,
)

NASTY_NAMES = [
    pytest.param(None, id="none"),
    pytest.param("", id="empty"),
    pytest.param("..", id="dot-dot"),
    pytest.param("../../etc/passwd", id="traversal"),
    pytest.param("C:\\Windows\\evil.exe", id="windows-path"),
    pytest.param('a"\r\nSet-Cookie: x=1; "b.txt', id="header-injection"),
    pytest.param("invoice\u202egpj.exe", id="rtl-override"),
    pytest.param("caf\u00e9\udcff.txt", id="lone-surrogate"),
    pytest.param("\udcff\udcfe", id="only-surrogates"),
    pytest.param("\uff0f\uff02\uff3c.txt", id="full-width-separators-and-quote"),
    pytest.param("\U0001f3ac " * 200 + ".mp4", id="long-emoji"),
    pytest.param("\x00\x1f\x7f\x85", id="only-controls"),
    pytest.param("a\\b/c\\", id="trailing-separator"),
    pytest.param("100% \u00bd \u00df.txt", id="percent-and-no-ascii-base"),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        pytest.param("video.mp4", {}, "video.mp4", id="plain"),
        pytest.param("relat\u00f3rio \u00e7\u00e3o.pdf", {}, "relat\u00f3rio \u00e7\u00e3o.pdf",
                     id="non-ascii-kept"),
        pytest.param("e\u0301.txt", {}, "\u00e9.txt", id="nfc-composed"),
        pytest.param(None, {}, "file", id="none"),
        pytest.param("", {}, "file", id="empty"),
        pytest.param(".", {}, "file", id="dot"),
        pytest.param("..", {}, "file", id="dot-dot"),
        pytest.param("...", {}, "file", id="dots-only"),
        pytest.param("  \t ", {}, "file", id="whitespace-only"),
        pytest.param(".hidden", {}, ".hidden", id="leading-dot-kept"),
        pytest.param("/etc/passwd", {}, "passwd", id="posix-path"),
        pytest.param("C:\\Users\\x\\a.txt", {}, "a.txt", id="windows-path"),
        pytest.param("..\\../x.png", {}, "x.png", id="mixed-traversal"),
        pytest.param("dir/", {}, "file", id="trailing-slash"),
        pytest.param("dir/..", {}, "file", id="trailing-dot-dot"),
        pytest.param('say "hi".txt', {}, "say hi.txt", id="quotes-dropped"),
        pytest.param("a\r\nb.txt", {}, "ab.txt", id="crlf-dropped"),
        pytest.param("a\x00b\x7fc\x85.txt", {}, "abc.txt", id="c0-c1-controls-dropped"),
        pytest.param("invoice\u202egpj.exe", {}, "invoicegpj.exe", id="rtl-override-dropped"),
        pytest.param("\ufeffa\u200bb.txt", {}, "ab.txt", id="bom-and-zwsp-dropped"),
        pytest.param("a\u2028b.txt", {}, "ab.txt", id="line-separator-dropped"),
        pytest.param("a\udcffb.txt", {}, "ab.txt", id="lone-surrogate-dropped"),
        pytest.param("a\udcff\u0301.txt", {}, "\u00e1.txt", id="surrogate-then-nfc"),
        pytest.param("  spaced  .txt \u00a0", {}, "spaced  .txt", id="outer-whitespace-stripped"),
        pytest.param("abcdefghijkl.pdf", {"max_len": 10}, "abcdef.pdf", id="truncate-keeps-ext"),
        pytest.param("abc defghijkl.pdf", {"max_len": 8}, "abc.pdf", id="truncate-no-inner-space"),
        pytest.param("abcdefghijkl", {"max_len": 5}, "abcde", id="truncate-no-ext"),
        pytest.param("a.verylongext", {"max_len": 5}, "a.ver", id="truncate-ext-too-long"),
        pytest.param("\u00e9" * 10, {"max_len": 4}, "\u00e9" * 4, id="truncate-counts-chars"),
    ],
)
def test_sanitize_filename(name, kwargs, expected):
    assert sanitize_filename(name, **kwargs) == expected


@pytest.mark.parametrize(
    ("name", "length"),
    [
        pytest.param("a" * 300 + ".mp4", 255, id="long-with-ext"),
        pytest.param("a." + "b" * 300, 255, id="long-ext"),
        pytest.param("\u00e7" * 300, 255, id="long-non-ascii"),
    ],
)
def test_sanitize_filename_default_max_len(name, length):
    result = sanitize_filename(name)
    assert len(result) == length
    assert result[-4:] == name[-4:]


@pytest.mark.parametrize("name", NASTY_NAMES)
def test_sanitize_filename_always_safe(name):
    result = sanitize_filename(name)
    assert result and result.strip(".")
    assert len(result) <= 255
    result.encode("utf-8")  # raises on a lone surrogate
    assert not set(result) & set('/\\"')
    assert not any(unicodedata.category(c) in {"Cc", "Cf", "Cs"} for c in result)
    assert result == result.strip()
    assert unicodedata.is_normalized("NFC", result)


@pytest.mark.parametrize(
    ("filename", "kwargs", "expected"),
    [
        pytest.param(
            "relat\u00f3rio \u00e7\u00e3o.pdf",
            {},
            "inline; filename=\"relatorio cao.pdf\"; "
            "filename*=UTF-8''relat%C3%B3rio%20%C3%A7%C3%A3o.pdf",
            id="checklist-example",
        ),
        pytest.param(
            "report.pdf",
            {},
            "inline; filename=\"report.pdf\"; filename*=UTF-8''report.pdf",
            id="ascii-both-params",
        ),
        pytest.param(
            "report.pdf",
            {"inline": False},
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf",
            id="attachment",
        ),
        pytest.param(
            "my clip.mp4",
            {},
            "inline; filename=\"my clip.mp4\"; filename*=UTF-8''my%20clip.mp4",
            id="space-is-%20",
        ),
        pytest.param(
            "a!#$&+-.^_`|~b",
            {},
            "inline; filename=\"a!#$&+-.^_`|~b\"; filename*=UTF-8''a!#$&+-.^_`|~b",
            id="attr-chars-not-encoded",
        ),
        pytest.param(
            "a%b'c(d)*e;f=g,h.txt",
            {},
            "inline; filename=\"a_b'c(d)*e;f=g,h.txt\"; "
            "filename*=UTF-8''a%25b%27c%28d%29%2Ae%3Bf%3Dg%2Ch.txt",
            id="non-attr-chars-encoded-percent-not-in-fallback",
        ),
        pytest.param(
            "\U0001f3ac clip.mp4",
            {},
            "inline; filename=\"_ clip.mp4\"; filename*=UTF-8''%F0%9F%8E%AC%20clip.mp4",
            id="emoji",
        ),
        pytest.param(
            "\u65e5\u672c.txt",
            {},
            "inline; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt",
            id="cjk",
        ),
        pytest.param(
            "\ufb01le \u00bd \u00df.txt",
            {},
            "inline; filename=\"file _ _.txt\"; "
            "filename*=UTF-8''%EF%AC%81le%20%C2%BD%20%C3%9F.txt",
            id="nfkd-ligature-and-no-ascii-base",
        ),
        pytest.param(
            "\uff41\uff0f\uff02\uff3c.txt",
            {},
            "inline; filename=\"a___.txt\"; "
            "filename*=UTF-8''%EF%BD%81%EF%BC%8F%EF%BC%82%EF%BC%BC.txt",
            id="full-width-forms-never-become-separators-or-quotes",
        ),
        pytest.param(
            '../x\\"evil"\r\n.txt',
            {},
            "inline; filename=\"evil.txt\"; filename*=UTF-8''evil.txt",
            id="raw-input-sanitized-again",
        ),
        pytest.param(
            "", {}, "inline; filename=\"file\"; filename*=UTF-8''file", id="empty-becomes-file"
        ),
    ],
)
def test_content_disposition(filename, kwargs, expected):
    assert content_disposition(filename, **kwargs) == expected


# RFC 6266 §4.1 with RFC 8187 §3.2.1 attr-char / pct-encoded for the extended value.
_GRAMMAR = re.compile(
    r"(inline|attachment); filename=\"([\x20\x21\x23-\x5b\x5d-\x7e]*)\"; "
    r"filename\*=UTF-8''((?:[A-Za-z0-9!#$&+\-.^_`|~]|%[0-9A-F]{2})*)"
)


@pytest.mark.parametrize("name", NASTY_NAMES)
def test_content_disposition_is_well_formed(name):
    header = content_disposition(name or "")
    match = _GRAMMAR.fullmatch(header)
    assert match is not None, header
    assert unquote(match[3], errors="strict") == sanitize_filename(name)
    # An independent RFC 2231/8187 parser reads the same name back.
    message = Message()
    message["Content-Disposition"] = header
    values = message.get_params(header="content-disposition")
    extended = [v for k, v in values if k == "filename" and isinstance(v, tuple)]
    assert collapse_rfc2231_value(extended[0]) == sanitize_filename(name)


@pytest.mark.parametrize(
    ("mime_type", "unsafe"),
    [
        # Documents and script a browser would run in our origin.
        pytest.param("text/html", True, id="html"),
        pytest.param("TEXT/HTML", True, id="html-upper-case"),
        pytest.param("text/html; charset=utf-8", True, id="html-with-charset"),
        pytest.param("text/html ;charset=utf-8", True, id="html-space-before-param"),
        pytest.param("application/xhtml+xml", True, id="xhtml"),
        pytest.param("image/svg+xml", True, id="svg"),
        pytest.param("Image/SVG+XML", True, id="svg-mixed-case"),
        pytest.param("text/xml", True, id="text-xml"),
        pytest.param("application/xml", True, id="application-xml"),
        pytest.param("application/rss+xml", True, id="any-plus-xml"),
        pytest.param("application/xslt+xml", True, id="xslt"),
        pytest.param("text/xsl", True, id="xsl"),
        pytest.param("text/javascript", True, id="javascript"),
        pytest.param("application/javascript", True, id="application-javascript"),
        pytest.param("application/ecmascript", True, id="ecmascript"),
        pytest.param("application/x-javascript", True, id="x-javascript"),
        pytest.param("text/javascript1.5", True, id="javascript-1.5"),
        pytest.param("application/x-shockwave-flash", True, id="flash"),
        # Unparseable types count as unsafe.
        pytest.param("", True, id="empty"),
        pytest.param("html", True, id="no-slash"),
        pytest.param("text/", True, id="no-subtype"),
        pytest.param("/html", True, id="no-type"),
        pytest.param("text/html/x", True, id="two-slashes"),
        pytest.param("text / html", True, id="spaces-around-slash"),
        pytest.param("te\u00e4t/html", True, id="non-token-char"),
        pytest.param("*/*", True, id="wildcard"),
        pytest.param("text/*", True, id="subtype-wildcard"),
        # Media and inert documents.
        pytest.param("video/mp4", False, id="mp4"),
        pytest.param("video/webm", False, id="webm"),
        pytest.param("audio/mpeg", False, id="mp3"),
        pytest.param("image/jpeg", False, id="jpeg"),
        pytest.param("image/png", False, id="png"),
        pytest.param("application/pdf", False, id="pdf"),
        pytest.param("text/plain; charset=utf-8", False, id="plain-text"),
        pytest.param("application/octet-stream", False, id="octet-stream"),
        pytest.param("application/json", False, id="json"),
    ],
)
def test_is_unsafe_inline(mime_type, unsafe):
    assert is_unsafe_inline(mime_type) is unsafe
