"""Conditional requests: If-Match, If-None-Match, If-(Un)Modified-Since, If-Range.

RFC 9110 §13.  Pure functions over header strings; the caller builds the response.
Malformed headers never raise: a bad validator simply matches nothing, and a bad
date is ignored, as §13.1.3-13.1.4 require.
"""

from __future__ import annotations

import enum
import functools
import re
from datetime import datetime, timezone
from typing import Literal

MAX_ETAGS = 64  # entity tags examined per header; later ones are ignored
MAX_ETAG_HEADER_CHARS = 8192  # cut longer headers: fewer tags can only match less
_MAX_DATE_CHARS = 64  # the longest valid HTTP-date (rfc850, Wednesday) is 37

_OWS = " \t"  # RFC 9110 §5.6.3
# §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text.
# aiohttp decodes obs-text bytes to non-ASCII characters, so accept those too.
_ENTITY_TAG = re.compile(r'(W/)?("[\x21\x23-\x7e\x80-\U0010ffff]*")')

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LONG_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAY, _LONG_DAY, _MONTH = "|".join(_DAYS), "|".join(_LONG_DAYS), "|".join(_MONTHS)
_TIME = r"(?P<H>[0-9]{2}):(?P<M>[0-9]{2}):(?P<S>[0-9]{2})"
# RFC 9110 §5.6.7; names and "GMT" are case-sensitive there, and so here.
_IMF_FIXDATE = re.compile(  # Sun, 06 Nov 1994 08:49:37 GMT
    rf"(?:{_DAY}), (?P<d>[0-9]{{2}}) (?P<m>{_MONTH}) (?P<y>[0-9]{{4}}) {_TIME} GMT"
)
_RFC850 = re.compile(  # Sunday, 06-Nov-94 08:49:37 GMT
    rf"(?:{_LONG_DAY}), (?P<d>[0-9]{{2}})-(?P<m>{_MONTH})-(?P<y>[0-9]{{2}}) {_TIME} GMT"
)
_ASCTIME = re.compile(  # Sun Nov  6 08:49:37 1994
    rf"(?:{_DAY}) (?P<m>{_MONTH}) (?P<d>[0-9]{{2}}| [0-9]) {_TIME} (?P<y>[0-9]{{4}})"
)


class Outcome(enum.Enum):
    """Result of the precondition checks; the value is the status code to send."""

    PROCEED = None  # no precondition stops the request: evaluate Range next
    NOT_MODIFIED = 304
    PRECONDITION_FAILED = 412


def _whole_seconds(dt: datetime) -> datetime:
    # HTTP dates have one-second resolution (§5.6.7); a naive datetime is taken as UTC.
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.replace(microsecond=0)


@functools.lru_cache(maxsize=4096)   # the same Last-Modified, again and again
def http_date(dt: datetime) -> str:
    """Format ``dt`` as an IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``.

    Names come from fixed tables, not strftime, whose %a/%b follow the C locale.
    """
    dt = _whole_seconds(dt).astimezone(timezone.utc)
    return (
        f"{_DAYS[dt.weekday()]}, {dt.day:02d} {_MONTHS[dt.month - 1]} {dt.year:04d} "
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} GMT"
    )


def parse_http_date(value: str, *, now: datetime | None = None) -> datetime | None:
    """Parse an HTTP-date (RFC 9110 §5.6.7) into an aware UTC datetime, or None.

    Accepts IMF-fixdate and the obsolete rfc850 and asctime forms.  ``now`` (default:
    the current time) resolves rfc850's two-digit year.  The day name is not
    checked against the date; anything else invalid, including a list of dates,
    gives None.
    """
    value = value.strip(_OWS)
    if len(value) > _MAX_DATE_CHARS:
        return None
    match = _IMF_FIXDATE.fullmatch(value) or _ASCTIME.fullmatch(value)
    if match is not None:
        year = int(match["y"])
    else:
        match = _RFC850.fullmatch(value)
        if match is None:
            return None
        # §5.6.7: a two-digit year more than 50 years in the future is in the past.
        current = (now or datetime.now(timezone.utc)).year
        year = current - current % 100 + int(match["y"])
        if year > current + 50:
            year -= 100
    second = int(match["S"])
    if second == 60:  # §5.6.7 allows a leap second; datetime does not
        second = 59
    try:
        return datetime(
            year,
            _MONTHS.index(match["m"]) + 1,
            int(match["d"]),  # asctime pads with a space: int(" 6") == 6
            int(match["H"]),
            int(match["M"]),
            second,
            tzinfo=timezone.utc,
        )
    except ValueError:  # 31 Feb, hour 25, second 61, year 0000...
        return None


def parse_etag_list(value: str) -> list[tuple[bool, str]] | Literal["*"]:
    """Parse an If-Match / If-None-Match value (RFC 9110 §13.1.1-13.1.2).

    Returns ``"*"``, or ``(is_weak, opaque_tag)`` pairs with the quotes kept
    (``W/"x"`` gives ``(True, '"x"')``).  Lenient: malformed elements are skipped
    rather than failing the whole header, so garbage matches nothing.  At most
    MAX_ETAGS elements of the first MAX_ETAG_HEADER_CHARS characters are read.
    """
    value = value[:MAX_ETAG_HEADER_CHARS]
    if value.strip(_OWS) == "*":
        return "*"
    tags: list[tuple[bool, str]] = []
    pos, end, elements = 0, len(value), 0
    # Scan rather than split on ",": a comma is a valid etagc inside quotes.
    while pos < end and elements < MAX_ETAGS:
        while pos < end and value[pos] in " \t,":  # OWS and empty elements, §5.6.1.2
            pos += 1
        if pos == end:
            break
        elements += 1
        match = _ENTITY_TAG.match(value, pos)
        if match is not None:
            after = match.end()
            while after < end and value[after] in _OWS:
                after += 1
            if after == end or value[after] == ",":
                tags.append((match[1] is not None, match[2]))
                pos = after
                continue
        # Not an entity-tag (unquoted, lower-case w/, trailing junk): skip the element.
        comma = value.find(",", pos + 1)
        pos = end if comma < 0 else comma
    return tags


def _matches(header: str, etag: str, *, weak: bool) -> bool:
    tags = parse_etag_list(header)
    if tags == "*":  # §13.1.1-13.1.2: "*" matches any current representation
        return True
    # §8.8.3.2: strong comparison needs both tags strong; weak ignores the W/ flag.
    return any(tag == etag and (weak or not is_weak) for is_weak, tag in tags)


def evaluate_preconditions(
    method: str,
    etag: str,
    last_modified: datetime,
    *,
    if_match: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
    if_unmodified_since: str | None,
) -> Outcome:
    """Apply the precondition headers in the order of RFC 9110 §13.2.2.

    ``etag`` is the representation's strong entity tag with its quotes and
    ``last_modified`` its modification time; a header is absent when None.
    If-Range is separate (:func:`if_range_allows`) because it only matters once
    a Range header is being honoured (§13.2.2 step 5).
    """
    last_modified = _whole_seconds(last_modified)
    safe = method in ("GET", "HEAD")  # method names are case-sensitive, §9.1

    # Step 1, §13.1.1: If-Match uses strong comparison; no match is 412.
    if if_match is not None:
        if not _matches(if_match, etag, weak=False):
            return Outcome.PRECONDITION_FAILED
    # Step 2, §13.1.4: only without If-Match; an invalid date is ignored.
    elif if_unmodified_since is not None:
        date = parse_http_date(if_unmodified_since)
        if date is not None and last_modified > date:
            return Outcome.PRECONDITION_FAILED

    # Step 3, §13.1.2: If-None-Match uses weak comparison; a match means
    # "not modified" for GET/HEAD and a failed precondition for anything else.
    if if_none_match is not None:
        if _matches(if_none_match, etag, weak=True):
            return Outcome.NOT_MODIFIED if safe else Outcome.PRECONDITION_FAILED
    # Step 4, §13.1.3: only without If-None-Match, only for GET/HEAD, and an
    # invalid date is ignored.
    elif safe and if_modified_since is not None:
        date = parse_http_date(if_modified_since)
        if date is not None and last_modified <= date:
            return Outcome.NOT_MODIFIED

    return Outcome.PROCEED


def if_range_allows(if_range: str | None, etag: str, last_modified: datetime) -> bool:
    """Whether a Range may be honoured given If-Range (RFC 9110 §13.1.5).

    True when there is no If-Range, when it is a strong entity tag equal to
    ``etag``, or when it is an HTTP-date exactly equal to ``last_modified``.
    Anything else (a weak tag, another tag or date, garbage) is False: the
    caller ignores Range and sends the full 200.
    """
    if if_range is None:
        return True
    value = if_range.strip(_OWS)
    if value.startswith(('"', "W/")):
        # §13.1.5: a weak entity tag never matches; comparison is strong (§8.8.3.2).
        match = _ENTITY_TAG.fullmatch(value)
        return match is not None and match[1] is None and match[2] == etag
    # §13.1.5: a date validates only if it equals Last-Modified exactly.
    date = parse_http_date(value)
    return date is not None and date == _whole_seconds(last_modified)
