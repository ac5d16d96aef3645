"""Parsing identifiers that arrive as text (path segments, form fields, headers)."""
from __future__ import annotations

import re

INT4_MAX = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")   # bounded before int(): never convert a huge string


def parse_id(text: str | None) -> int | None:
    """A database id (SERIAL: 1..2^31-1) from text, or None if it isn't one."""
    if text is None:
        return None
    text = text.strip()
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if 1 <= value <= INT4_MAX else None
