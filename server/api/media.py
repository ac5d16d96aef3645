"""Metadata routes: one file, a message's files, removal."""
from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.api.media_json import media_json
from server.errors import MediaNotFound, MessageNotFound
from server.http.params import parse_id


def _media_id(request: web.Request) -> int:
    media_id = parse_id(request.match_info["mediaId"])
    if media_id is None:
        raise MediaNotFound()
    return media_id


async def get_media(request: web.Request) -> web.Response:
    rec = await request.app[appkeys.STORE].stat(_media_id(request))
    return web.json_response(media_json(rec))


async def list_message_media(request: web.Request) -> web.Response:
    message_id = parse_id(request.match_info["messageId"])
    store = request.app[appkeys.STORE]
    if message_id is None or not await store.message_exists(message_id):
        raise MessageNotFound()
    records = await store.list_for_message(message_id)
    return web.json_response({"message_id": message_id,
                              "media": [media_json(r) for r in records]})


async def delete_media(request: web.Request) -> web.Response:
    await request.app[appkeys.STORE].delete(_media_id(request))
    return web.Response(status=204)

