"""POST /api/zapi/webhook/{secret}: what Z-API tells us about our sends.

Z-API signs nothing and sends no auth header, so the secret path segment
(ZAPI_WEBHOOK_SECRET) is the webhook's only authentication: compared in constant
time, and a wrong one is a plain 404, as if the route did not exist. Whatever Z-API
sends with the right secret is answered 200 unless it is not JSON (400 invalid_json,
deep nesting included, by the one JSON reader in server/api/jsonbody.py): unknown event
types and fields are ignored, since an error here would only make Z-API retry or
disable the webhook. Replays are harmless: every update is idempotent (sql/zapi.sql).
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
from datetime import datetime, timezone

from aiohttp import web

from server import appkeys
from server.api.jsonbody import read_json

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
STATUSES = ("SENT", "RECEIVED", "READ", "PLAYED")   # READ_BY_ME is our own phone's


@dataclasses.dataclass(frozen=True)
class DeliveryFailed:
    zaap_id: str | None
    message_id: str | None
    error: str


@dataclasses.dataclass(frozen=True)
class StatusChanged:
    ids: tuple[str, ...]
    status: str
    at: datetime


def _moment(value: object) -> datetime:
    # "momment" is epoch milliseconds; anything else means "now".
    if isinstance(value, (int, float)) and not isinstance(value, bool) \
            and 0 < value < 10**14:
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    return datetime.now(timezone.utc)


def _str(value: object, limit: int = 255) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def interpret(event: object) -> DeliveryFailed | StatusChanged | None:
    """What a webhook body means for our deliveries, or None (ignored). Pure."""
    if not isinstance(event, dict):
        return None
    kind = event.get("type")
    if kind == "DeliveryCallback":
        error = _str(event.get("error"), 1000)
        ids = (_str(event.get("zaapId")), _str(event.get("messageId")))
        if error and any(ids):
            return DeliveryFailed(ids[0], ids[1], error)
        return None
    if kind == "MessageStatusCallback":
        status = event.get("status")
        raw_ids = event.get("ids")
        if status not in STATUSES or not isinstance(raw_ids, list):
            return None
        ids = tuple(i for i in (_str(x) for x in raw_ids[:100]) if i)
        return StatusChanged(ids, status, _moment(event.get("momment"))) if ids else None
    # ReceivedCallback and anything else: the chat backend owns incoming messages (it
    # keeps their media with POST /api/media/import-url).
    return None


def secret_matches(given: str, expected: str | None) -> bool:
    """Constant time, lengths included (both sides hashed first)."""
    if not expected:
        return False
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(),
                               hashlib.sha256(expected.encode()).digest())


async def zapi_webhook(request: web.Request) -> web.Response:
    settings = request.app[appkeys.SETTINGS]
    if not secret_matches(request.match_info["secret"], settings.zapi_webhook_secret):
        raise web.HTTPNotFound()
    event = await read_json(request, MAX_BODY)
    meaning = interpret(event)
    changed = 0
    outbox = request.app[appkeys.OUTBOX]
    if isinstance(meaning, DeliveryFailed):
        changed = await outbox.callback_failed(meaning.zaap_id, meaning.message_id,
                                               meaning.error)
    elif isinstance(meaning, StatusChanged):
        changed = await outbox.status_changed(list(meaning.ids), meaning.status, meaning.at)
    kind = event.get("type") if isinstance(event, dict) else None
    log.info("zapi webhook %s: %d delivery(ies) updated",
             kind if isinstance(kind, str) and kind.isalnum() else "(untyped)", changed)
    return web.json_response({"ok": True, "updated": changed})
