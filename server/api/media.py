"""Metadata routes: one file, a message's files, removal."""
from __future__ import annotations

from aiohttp import web

from server.api.media_json import media_json
from server.errors import MediaNotFound, MessageNotFound, QuarantineHold
from server.http.params import parse_id
from server.http import paging
from server.security import SIGNER
from server.security.hooks import is_admin
from server.security.audit import audited
from server.store.media import STORE


def _media_id(request: web.Request) -> int:
    media_id = parse_id(request.match_info["mediaId"])
    if media_id is None:
        raise MediaNotFound()
    return media_id


async def get_media(request: web.Request) -> web.Response:
    rec = await request.app[STORE].stat(_media_id(request))
    return web.json_response(media_json(rec, request.app[SIGNER], admin=is_admin(request)))


async def list_message_media(request: web.Request) -> web.Response:
    message_id = parse_id(request.match_info["messageId"])
    store = request.app[STORE]
    if message_id is None or not await store.message_exists(message_id):
        raise MessageNotFound()
    # Bounded pages (server/http/paging.py); the query is checked before the database.
    limit = paging.parse_limit(request.query.get("limit"))
    after = paging.decode_cursor(request.query.get("cursor"))
    records, more = await store.list_page(
        message_id, limit, None if after is None else (after.created_at, after.id))
    last = paging.Position(records[-1].created_at, records[-1].id) if more else None
    urls, admin = request.app[SIGNER], is_admin(request)
    return web.json_response(paging.page_body(
        [media_json(r, urls, admin=admin) for r in records], last))


async def delete_media(request: web.Request) -> web.Response:
    media_id = _media_id(request)
    store = request.app[STORE]
    async with audited(request, "delete", media_id=media_id) as audit:
        if not is_admin(request) and (await store.stat(media_id)).quarantine_reason:
            raise QuarantineHold()
        await store.delete(media_id, audit=audit)
    return web.Response(status=204)

