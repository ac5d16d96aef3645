"""Parsing identifiers that arrive as text (path segments, form fields, headers)."""
from __future__ import annotations

import re

INT4_MAX = 2**31 - 1
# Canonical form only (no sign, spaces or leading zeros), so one file has one URL and a
# cache never stores it twice; bounded before int(): never convert a huge string.
_DIGITS = re.compile(r"[1-9][0-9]{0,9}")


def parse_id(text: str | None) -> int | None:
    """A database id (SERIAL: 1..2^31-1) from its canonical text, or None."""
    if text is None:
        return None
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if 1 <= value <= INT4_MAX else None
