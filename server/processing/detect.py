"""What a file is, from its bytes: the signatures of the one type table
(server/http/media_types.py), plus what a chat also carries and filetype can't see
(plain text and CSV), and markup that must never pass as either (HTML, SVG, XML).

``identify`` always names what it found, allowed or not, so a refusal (415) can say
which type was detected. Whether the container really parses is checked later, on the
whole file (images.py, av.py, documents.py).
"""
from __future__ import annotations

import codecs
import csv
import re

from server.http.media_types import SNIFF_BYTES, MediaKind, kind_of, signature

UNKNOWN = "application/octet-stream"


def identify(head: bytes, *, complete: bool) -> MediaKind:
    """The type of a file starting with ``head`` (``complete``: head is the whole file),
    from the types of server/http/media_types.py; media_type None if not one of them."""
    if len(head) > SNIFF_BYTES:   # the decision is made on the same bytes every time
        head, complete = head[:SNIFF_BYTES], False
    mime = signature(head)
    if mime is not None:
        return kind_of(mime)
    markup = markup_type(head)
    if markup is not None:
        return kind_of(markup)
    text = decode_text(head, complete=complete)
    if text is not None:
        return kind_of("text/csv" if looks_like_csv(text, complete=complete)
                       else "text/plain")
    return kind_of(UNKNOWN)


_MARKUP = [   # in this order: an SVG may hold <script>, an HTML page rarely <svg> first
    (re.compile(rb"<svg[\s>]|<!doctype\s+svg", re.I), "image/svg+xml"),
    (re.compile(rb"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]|<script[\s>]"
                rb"|<iframe[\s>]", re.I), "text/html"),
    (re.compile(rb"<\?xml", re.I), "application/xml"),
]


def markup_type(head: bytes) -> str | None:
    """HTML, SVG or XML that a browser would interpret, wherever in the first bytes its
    tell-tale tags sit (an SVG often opens with an XML declaration and comments)."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n\f")
    if not start.startswith(b"<"):
        return None
    sample = head[:4096]
    for pattern, mime in _MARKUP[:2]:
        if pattern.search(sample):
            return mime
    return "application/xml" if _MARKUP[2][0].match(start) else "text/html"


# C0 controls a text file never holds (tab, newline, form feed and carriage return are
# fine; ESC is kept out of the list for ANSI-coloured logs).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")


def decode_text(data: bytes, *, complete: bool) -> str | None:
    """``data`` as text if it is valid UTF-8 without NULs or binary control characters;
    a multi-byte character cut at the end of a head that isn't the whole file is fine."""
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(data, final=complete)
    except UnicodeDecodeError:
        return None
    if _CONTROL.search(text):
        return None
    return text


def looks_like_csv(text: str, *, complete: bool) -> bool:
    """At least two rows with the same number (2 or more) of delimited fields, without
    the space after each delimiter that marks prose ("Hello, world.")."""
    lines = text.splitlines()
    if not complete and len(lines) > 1:
        lines = lines[:-1]          # the last line may be cut short
    lines = [ln for ln in lines[:100] if ln.strip()]
    if len(lines) < 2:
        return False
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
    except csv.Error:
        return False
    if dialect.skipinitialspace:
        return False
    widths = {len(row) for row in csv.reader(lines, dialect)}
    return len(widths) == 1 and widths.pop() >= 2
