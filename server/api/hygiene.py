"""Storage hygiene routes: a key's usage (GET /api/usage) and quarantine (POST/DELETE
/api/media/{id}/quarantine, GET /api/quarantine). The rules live in server/hygiene."""
from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timedelta, timezone

from aiohttp import web

from server.api.jsonbody import optional_str, read_json_object
from server.errors import BadRequest, Forbidden, InvalidCursor, MediaNotFound, NotQuarantined
from server.http import paging
from server.http.params import parse_id
from server.hygiene import quarantine as q
from server.hygiene.quotas import usage_of, usage_page
from server.security import PRINCIPAL
from server.security.hooks import is_admin
from server.security.audit import audited
from server.security.keys import NAME
from server.store.media import STORE

NO_STORE = {"Cache-Control": "no-store"}
MAX_REASON = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_QUARANTINE_CURSOR = re.compile(r"q1\.(-?\d{1,19})\.([0-9a-f]{64})")


async def get_usage(request: web.Request) -> web.Response:
    """GET /api/usage: the calling key's usage and limits; an admin key may ask for
    ``?key=NAME``, or every key's, paged (``?all=1`` or any ``limit``/``cursor``)."""
    principal = request[PRINCIPAL]
    query = request.query
    name = query.get("key")
    paged = name is None and any(k in query for k in ("all", "limit", "cursor"))
    if (name is not None and name != principal.name or paged) and not is_admin(request):
        raise Forbidden("only an admin key sees other keys' usage")
    store = request.app[STORE]
    if paged:
        limit = paging.parse_limit(query.get("limit"))
        after = _decode_name(query.get("cursor"))
        async with store.connection() as conn:
            items, more = await usage_page(conn, after, limit)
        return web.json_response(
            {"items": [u.json() for u in items],
             "next_cursor": _encode(f"k1.{items[-1].key}") if more else None},
            headers=NO_STORE)
    if principal.kind != "key" and name is None:
        raise BadRequest("usage belongs to API keys; name one with ?key=")
    async with store.connection() as conn:
        usage = await usage_of(conn, name or principal.name)
    if usage is None:
        raise BadRequest(f"no active key named {name!r}")
    return web.json_response(usage.json(), headers=NO_STORE)


def _media_id(request: web.Request) -> int:
    media_id = parse_id(request.match_info["mediaId"])
    if media_id is None:
        raise MediaNotFound()
    return media_id


async def quarantine_media(request: web.Request) -> web.Response:
    """POST /api/media/{id}/quarantine {"reason"}: every media showing its content
    answers 451 from now on, on every instance."""
    media_id = _media_id(request)
    body = await read_json_object(request)
    reason = optional_str(body, "reason", MAX_REASON)
    if not reason or not reason.strip():
        raise BadRequest("reason is required")
    principal = request[PRINCIPAL]
    async with audited(request, "quarantine", media_id=media_id) as audit:
        async with request.app[STORE].connection() as conn:
            sha256 = await q.content_of(conn, media_id)
            added = await q.quarantine(conn, sha256, reason=reason.strip(),
                                       who=principal.name, media_id=media_id, audit=audit)
    return web.json_response({"media_id": media_id, "sha256": sha256.hex(),
                              "quarantined": True, "reason": reason.strip(),
                              "already": not added},
                             status=201 if added else 200, headers=NO_STORE)


async def release_media(request: web.Request) -> web.Response:
    """DELETE /api/media/{id}/quarantine: its content is served again."""
    media_id = _media_id(request)
    async with audited(request, "quarantine_release", media_id=media_id) as audit:
        async with request.app[STORE].connection() as conn:
            sha256 = await q.content_of(conn, media_id)
            if not await q.release(conn, sha256, media_id=media_id, audit=audit):
                raise NotQuarantined()
    return web.Response(status=204)


async def list_quarantine(request: web.Request) -> web.Response:
    """GET /api/quarantine?limit=&cursor=: quarantined contents, newest first."""
    limit = paging.parse_limit(request.query.get("limit"))
    after = _decode_quarantine(request.query.get("cursor"))
    async with request.app[STORE].connection() as conn:
        items, more = await q.page(conn, after, limit)
    cursor = None
    if more:
        last = items[-1]
        micros = (last.quarantined_at - _EPOCH) // timedelta(microseconds=1)
        cursor = _encode(f"q1.{micros}.{last.sha256.hex()}")
    return web.json_response({"items": [i.json() for i in items], "next_cursor": cursor},
                             headers=NO_STORE)


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(text: str | None) -> str | None:
    if text is None:
        return None
    if not 1 <= len(text) <= 200:
        raise InvalidCursor()
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise InvalidCursor() from None


def _decode_name(text: str | None) -> str | None:
    raw = _decode(text)
    if raw is None:
        return None
    if not raw.startswith("k1.") or not NAME.fullmatch(raw[3:]):
        raise InvalidCursor()
    return raw[3:]


def _decode_quarantine(text: str | None) -> tuple[datetime, bytes] | None:
    raw = _decode(text)
    if raw is None:
        return None
    m = _QUARANTINE_CURSOR.fullmatch(raw)
    if m is None:
        raise InvalidCursor()
    try:
        return _EPOCH + timedelta(microseconds=int(m.group(1))), bytes.fromhex(m.group(2))
    except OverflowError:
        raise InvalidCursor() from None
