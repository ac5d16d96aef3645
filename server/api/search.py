"""GET /api/media?message_id=&media_type=&mime_type=&name=&sha256=&since=&until=&limit=&cursor=

Answers ``{"items": [media...], "next_cursor": "..." | null}``, newest first. The
cursor is opaque to clients: base64url of the last item's created_at (microseconds
since the epoch) and id. Every parameter is checked here; a bad one is a 400 naming it.
"""
from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timedelta, timezone

from aiohttp import web

from server.api.media_json import media_json
from server.errors import BadRequest
from server.http.params import parse_id
from server.security import SIGNER
from server.security.hooks import is_admin
from server.store.media import STORE
from server.store.search import Filters, search

DEFAULT_LIMIT, MAX_LIMIT = 50, 200
MEDIA_TYPES = ("image", "video", "audio", "document")
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_CURSOR = re.compile(r"(-?[0-9]{1,19}):([1-9][0-9]{0,9})")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_KNOWN = {"message_id", "media_type", "mime_type", "name", "sha256", "since", "until",
          "limit", "cursor"}
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_NAME = 255


def encode_cursor(created_at: datetime, media_id: int) -> str:
    us = (created_at - EPOCH) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{us}:{media_id}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, int] | None:
    """The (created_at, id) a cursor names, or None if it is not one of ours."""
    if len(text) > 64:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    m = _CURSOR.fullmatch(raw)
    if m is None:
        return None
    try:
        at = EPOCH + timedelta(microseconds=int(m.group(1)))
    except OverflowError:
        return None
    media_id = parse_id(m.group(2))
    return None if media_id is None else (at, media_id)


def _instant(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date or date and time") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def parse_search(query) -> tuple[Filters, tuple[datetime, int] | None, int]:
    """Filters, cursor and limit from the query string; BadRequest naming the bad one."""
    unknown = set(query) - _KNOWN
    if unknown:
        raise BadRequest(f"unknown parameter {sorted(unknown)[0]!r}")
    message_id = None
    if (text := query.get("message_id")) is not None:
        message_id = parse_id(text)
        if message_id is None:
            raise BadRequest("message_id must be an integer between 1 and 2147483647")
    media_type = query.get("media_type")
    if media_type is not None and media_type not in MEDIA_TYPES:
        raise BadRequest(f"media_type must be one of {', '.join(MEDIA_TYPES)}")
    mime_type = query.get("mime_type")
    if mime_type is not None and not _MIME.fullmatch(mime_type):
        raise BadRequest("mime_type must be a lower-case type/subtype")
    limit = DEFAULT_LIMIT
    if (text := query.get("limit")) is not None:
        value = parse_id(text)
        if value is None or value > MAX_LIMIT:
            raise BadRequest(f"limit must be an integer between 1 and {MAX_LIMIT}")
        limit = value
    cursor = None
    if (text := query.get("cursor")) is not None:
        cursor = decode_cursor(text)
        if cursor is None:
            raise BadRequest("cursor is not one this service handed out")
    sha256, name = _content_and_name(query)
    if (sha256 is not None or name is not None) and (message_id or mime_type):
        raise BadRequest("name and sha256 combine with media_type, since and until only")
    f = Filters(message_id, media_type, mime_type, _instant("since", query.get("since")),
                _instant("until", query.get("until")), sha256, name)
    return f, cursor, limit


def _content_and_name(query) -> tuple[bytes | None, str | None]:
    sha256 = query.get("sha256")
    if sha256 is not None and not _SHA256.fullmatch(sha256):
        raise BadRequest("sha256 must be 64 lower-case hexadecimal digits")
    name = query.get("name")
    if name is not None and (not 1 <= len(name) <= MAX_NAME or "\x00" in name):
        raise BadRequest(f"name must be 1 to {MAX_NAME} characters, no NUL")
    if sha256 is not None and name is not None:
        raise BadRequest("give name or sha256, not both")
    return (None if sha256 is None else bytes.fromhex(sha256)), name


async def search_media(request: web.Request) -> web.Response:
    filters, cursor, limit = parse_search(request.query)
    # One more than asked: whether a next page exists, without counting.
    records = await search(request.app[STORE], filters, cursor, limit + 1)
    page = records[:limit]
    nxt = (encode_cursor(page[-1].created_at, page[-1].id)
           if len(records) > limit else None)
    urls, admin = request.app[SIGNER], is_admin(request)
    return web.json_response({"items": [media_json(r, urls, admin=admin) for r in page],
                              "next_cursor": nxt})
