"""Parse the ``Range`` request header and decide which bytes to send.

RFC 9110 §14.1-14.2.  Pure functions: the caller owns the file and the response.
Anything we do not understand is *ignored* (full 200), which RFC 9110 §14.2
allows and which every client handles; only a well-formed request whose specs
all miss the representation gets 416.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_RANGES = 32  # more specs than this in one header -> ignore Range (full 200)
MAX_HEADER_CHARS = 4096  # longer Range header -> ignore
_MAX_DIGITS = 18  # 10**18 bytes is far beyond any file: bound digits before int()
_HUGE = 10**_MAX_DIGITS  # stands for "a number with more than 18 digits"

# §14.1.1: int-range = first-pos "-" [ last-pos ];  suffix-range = "-" suffix-length.
# [0-9] rather than \d or str.isdigit(): those accept non-ASCII digits such as "²".
_SPEC = re.compile(r"([0-9]*)-([0-9]*)", re.ASCII)
_OWS = " \t"  # RFC 9110 §5.6.3


@dataclass(frozen=True)
class ByteRange:
    """Inclusive byte positions, as in ``Content-Range: bytes start-end/len``."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable:
    """Type of :data:`UNSATISFIABLE`: valid header, but no spec overlaps the file."""

    _instance: Unsatisfiable | None = None

    def __new__(cls) -> Unsatisfiable:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSATISFIABLE"


UNSATISFIABLE = Unsatisfiable()


def _strip_zeros(digits: str) -> str:
    return digits.lstrip("0") or "0"


def _to_int(digits: str) -> int:
    """int() on at most 18 digits; anything longer becomes _HUGE (never converted)."""
    digits = _strip_zeros(digits)
    return int(digits) if len(digits) <= _MAX_DIGITS else _HUGE


def _is_less(a: str, b: str) -> bool:
    """Numeric a < b on digit strings of any length, without int()."""
    a, b = _strip_zeros(a), _strip_zeros(b)
    return (len(a), a) < (len(b), b)


def parse_range(header: str | None, length: int) -> list[ByteRange] | None | Unsatisfiable:
    """Interpret a ``Range`` header against a representation of ``length`` bytes.

    Returns ``None`` to ignore the header and send the whole 200 (absent, unknown
    unit, invalid syntax, more than MAX_RANGES specs, longer than MAX_HEADER_CHARS);
    ``UNSATISFIABLE`` when the syntax is valid but no spec is satisfiable (416);
    otherwise the satisfiable ranges in request order, ends clamped to length - 1.
    """
    if header is None or len(header) > MAX_HEADER_CHARS:
        return None
    # Leading/trailing OWS is not part of a field value (RFC 9110 §5.5).
    unit, sep, range_set = header.strip(_OWS).partition("=")
    # §14.1: range units are case-insensitive; unknown units are ignored (§14.2).
    if not sep or unit.lower() != "bytes":
        return None
    # The grammar has no OWS after "=", so "bytes= 0-1" is invalid -> ignored.
    if range_set[:1] in (" ", "\t"):
        return None
    # 1#range-spec: OWS around commas and empty elements are allowed (§5.6.1.2).
    specs = [s.strip(_OWS) for s in range_set.split(",")]
    specs = [s for s in specs if s]
    if not specs or len(specs) > MAX_RANGES:
        return None

    result: list[ByteRange] = []
    for spec in specs:
        match = _SPEC.fullmatch(spec)
        if match is None:
            return None
        first, last = match.groups()
        if first:
            # §14.1.1: last-pos < first-pos makes the whole header invalid.
            if last and _is_less(last, first):
                return None
            start = _to_int(first)
            # §14.1.2: satisfiable only if first-pos < length; a huge start never is.
            if start >= length:
                continue
            # §14.1.2: an absent or too-large last-pos means "to the end".
            end = min(_to_int(last), length - 1) if last else length - 1
        elif last:
            suffix = _to_int(last)
            # §14.1.2: "-0" is unsatisfiable; a suffix >= length means the whole file.
            if suffix == 0 or length == 0:
                continue
            start, end = max(length - suffix, 0), length - 1
        else:
            return None  # a lone "-"
        result.append(ByteRange(start, end))
    # §14.1.2 would call "-n" satisfiable on an empty file, but Content-Range (§14.4)
    # cannot express zero bytes, so for length 0 every spec lands here (§15.5.17: 416).
    return result or UNSATISFIABLE


def coalesce(ranges: list[ByteRange], gap: int = 80) -> list[ByteRange]:
    """Merge overlapping ranges and ranges at most ``gap`` bytes apart.

    If no two ranges overlap or lie within ``gap`` bytes of each other, the ranges
    are returned unchanged (parts go in request order, RFC 9110 §15.3.7.2).
    Otherwise they are sorted and merged, which bounds a multipart response: merged
    ranges are disjoint, so their total never exceeds the file length.  §15.3.7.2
    allows coalescing regardless of order; overlapping ranges are a known
    amplification attack (§17.15).  The default gap is the ~80-byte part overhead.
    """
    ordered = sorted(ranges, key=lambda r: r.start)
    merged: list[ByteRange] = []
    for r in ordered:
        # Bytes between the previous range and this one: negative means overlap.
        if merged and r.start - merged[-1].end - 1 <= gap:
            prev = merged[-1]
            merged[-1] = ByteRange(prev.start, max(prev.end, r.end))
        else:
            merged.append(r)
    return list(ranges) if len(merged) == len(ranges) else merged
