"""Reading a 206 response strictly, for the serving tests."""
from __future__ import annotations

import re

from multidict import CIMultiDict


def byteranges(resp, body: bytes) -> list[tuple[CIMultiDict, bytes]]:
    """Split a multipart/byteranges body (RFC 9110 §14.6, RFC 2046 §5.1.1) strictly:
    dash-boundary first, CRLF before every later delimiter, close-delimiter last."""
    match = re.fullmatch(r'multipart/byteranges; ?boundary="?([^";]+)"?',
                         resp.headers["Content-Type"])
    assert match, resp.headers["Content-Type"]
    boundary = match[1].encode()
    pieces = (b"\r\n" + body).split(b"\r\n--" + boundary)
    assert pieces[0] == b"", "nothing before the first boundary"
    assert pieces[-1] == b"--\r\n", "ends with the close-delimiter"
    parts = []
    for piece in pieces[1:-1]:
        head, sep, data = piece.partition(b"\r\n\r\n")
        assert head.startswith(b"\r\n") and sep
        headers = CIMultiDict(line.split(": ", 1) for line in head[2:].decode().split("\r\n"))
        parts.append((headers, data))
    return parts


def content_range(value: str, length: int) -> tuple[int, int]:
    match = re.fullmatch(rf"bytes ([0-9]+)-([0-9]+)/{length}", value)
    assert match, value
    return int(match[1]), int(match[2])
