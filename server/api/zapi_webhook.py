"""POST /api/zapi/webhook/{secret}: what Z-API tells us about our sends.

Z-API signs nothing and sends no auth header, so the secret path segment
(ZAPI_WEBHOOK_SECRET) is the webhook's only authentication: compared in constant
time, and a wrong one is a plain 404, as if the route did not exist. Whatever Z-API
sends with the right secret is answered 200 unless it is not JSON (400 invalid_json,
deep nesting included, by the one JSON reader in server/api/jsonbody.py): unknown event
types and fields are ignored, since an error here would only make Z-API retry or
disable the webhook (what each callback means: server/zapi/callbacks.py). Replays are
harmless: every update is idempotent (sql/zapi.sql).
"""
from __future__ import annotations

import logging

from aiohttp import web

from server.api.jsonbody import read_json
from server.settings import SETTINGS
from server.zapi.callbacks import DeliveryFailed, StatusChanged, interpret, secret_matches
from server.zapi.outbox import OUTBOX

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


async def zapi_webhook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if not secret_matches(request.match_info["secret"], settings.zapi.webhook_secret):
        raise web.HTTPNotFound()
    event = await read_json(request, MAX_BODY)
    meaning = interpret(event)
    changed = 0
    outbox = request.app[OUTBOX]
    if isinstance(meaning, DeliveryFailed):
        changed = await outbox.callback_failed(meaning.zaap_id, meaning.message_id,
                                               meaning.error)
    elif isinstance(meaning, StatusChanged):
        changed = await outbox.status_changed(list(meaning.ids), meaning.status, meaning.at)
    kind = event.get("type") if isinstance(event, dict) else None
    log.info("zapi webhook %s: %d delivery(ies) updated",
             kind if isinstance(kind, str) and kind.isalnum() else "(untyped)", changed)
    return web.json_response({"ok": True, "updated": changed})
