"""Sizes and counts as operators write them: ``50M``, ``2G``, ``1048576``, ``none``.

Pure. Suffixes are powers of 1024 (K, M, G, T, with an optional ``iB``/``B``), case
does not matter; ``none`` means no limit (None), distinct from 0 (nothing allowed).
"""
from __future__ import annotations

import re

_SIZE = re.compile(r"(\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
MAX_SIZE = 2**63 - 1


class BadSize(ValueError):
    """Not a size (or count) this parser understands; the message says what is."""


NONE = "none"


def parse_size(text: str) -> int | None:
    """``50M`` → 52428800; ``none`` → None. Raises BadSize."""
    text = text.strip()
    if text.lower() == NONE:
        return None
    m = _SIZE.fullmatch(text)
    if m is None:
        raise BadSize(f"{text!r} is not a size: a number with an optional K, M, G or T "
                      "(powers of 1024), or 'none'")
    value = int(m.group(1)) * 1024 ** _POWERS[m.group(2).lower()]
    if value > MAX_SIZE:
        raise BadSize(f"{text!r} is too large")
    return value


def parse_count(text: str) -> int | None:
    """A plain count (files, uploads per minute); ``none`` → None. Raises BadSize."""
    text = text.strip()
    if text.lower() == NONE:
        return None
    if not text.isdigit() or len(text) > 10 or int(text) > 2**31 - 1:
        raise BadSize(f"{text!r} is not a count: a whole number up to 2147483647, "
                      "or 'none'")
    return int(text)


def format_size(n: int | None) -> str:
    """The shortest exact spelling: 52428800 → 50M; None → none."""
    if n is None:
        return NONE
    for suffix in "TGMK":
        unit = 1024 ** _POWERS[suffix.lower()]
        if n and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)
