"""Keyset pagination for listings: ``?limit=`` and an opaque ``?cursor=``.

A listing of a message with many files must not build megabytes of JSON on the event
loop in one call: a page holds at most MAX_LIMIT items. The cursor is the (created_at,
id) of the last item sent, so the next page starts strictly after it whatever was
inserted meanwhile; it is opaque to clients (base64url of a versioned text) and checked
on the way back in: a forged or truncated cursor is a 400, never a 500 or a wrong page.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from datetime import datetime, timedelta, timezone

from server.errors import InvalidCursor, InvalidLimit

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CURSOR = re.compile(r"v1\.(-?\d{1,19})\.(\d{1,19})")
MAX_ID = 2**31 - 1          # media ids (SERIAL); the audit log's are BIGSERIAL


@dataclasses.dataclass(frozen=True)
class Position:
    """Where a page ended: the last item's (created_at, id)."""
    created_at: datetime
    id: int


def parse_limit(text: str | None) -> int:
    """``?limit=``: absent means DEFAULT_LIMIT; else an integer 1..MAX_LIMIT (400)."""
    if text is None:
        return DEFAULT_LIMIT
    if not re.fullmatch(r"[0-9]{1,7}", text) or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidLimit()
    return int(text)


def encode_cursor(pos: Position) -> str:
    # Whole microseconds (PostgreSQL's precision), so the round trip is exact.
    micros = (pos.created_at - _EPOCH) // timedelta(microseconds=1)
    raw = f"v1.{micros}.{pos.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str | None, max_id: int = MAX_ID) -> Position | None:
    """``?cursor=``: absent means the first page; anything we did not make is a 400.
    ``max_id``: the largest id the listing's table can hold."""
    if text is None:
        return None
    if not 1 <= len(text) <= 64:
        raise InvalidCursor()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise InvalidCursor() from None
    m = _CURSOR.fullmatch(raw)
    if m is None:
        raise InvalidCursor()
    micros, media_id = int(m.group(1)), int(m.group(2))
    try:
        created = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise InvalidCursor() from None
    if not 1 <= media_id <= max_id:
        raise InvalidCursor()
    return Position(created, media_id)


def page_body(items: list[dict], next_pos: Position | None) -> dict:
    """The wire shape: ``{"items": [...], "next_cursor": str | None}``."""
    return {"items": items,
            "next_cursor": None if next_pos is None else encode_cursor(next_pos)}
