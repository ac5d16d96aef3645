"""Z-API sends: ask for one, and read their state. The sending itself is the outbox's
(server/zapi/outbox.py); these handlers only write and read its rows."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from server.api.jsonbody import optional_str, read_json_object
from server.api.media import _media_id
from server.errors import DeliveryNotFound, InvalidPhone, ZapiDisabled
from server.http.params import parse_id
from server.security.audit import audited
from server.settings import SETTINGS
from server.store.media import STORE
from server.zapi.outbox import OUTBOX
from server.zapi.phone import parse_phone

MAX_CAPTION = 4096


def delivery_json(row: dict[str, Any]) -> dict[str, Any]:
    def iso(v: datetime | None) -> str | None:
        return v.isoformat() if v is not None else None
    return {
        "id": row["id"],
        "delivery_id": row["id"],
        "media_id": row["media_id"],
        "phone": row["phone"],
        "caption": row["caption"],
        "reply_to": row["reply_to"],
        "state": row["state"],
        "attempts": row["attempts"],
        "next_attempt_at": iso(row["next_attempt_at"]) if row["state"] == "queued" else None,
        "last_error": row["last_error"],
        "last_http_status": row["last_http_status"],
        "zaap_id": row["zaap_id"],
        "zapi_message_id": row["zapi_message_id"],
        "sent_at": iso(row["sent_at"]),
        "whatsapp_status": row["whatsapp_status"],
        "whatsapp_status_at": iso(row["whatsapp_status_at"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def delivery_path(delivery_id: int) -> str:
    return f"/api/deliveries/{delivery_id}"


def check_send_request(settings, phone: object, caption: object,
                       reply_to: object = None) -> tuple[str, str | None, str | None]:
    """The validated (phone, caption, reply_to) of a send; 503 when sending is off."""
    if not settings.zapi.enabled:
        raise ZapiDisabled()
    parsed = parse_phone(phone)
    if parsed is None:
        raise InvalidPhone()
    data = {"caption": caption, "reply_to": reply_to}
    return (parsed, optional_str(data, "caption", MAX_CAPTION),
            optional_str(data, "reply_to", 255))


def check_upload_send(settings, fields: dict[str, str]) -> tuple[str, str | None] | None:
    """An upload's ``send_to``/``caption``: None without send_to, else (phone, caption);
    raises like the send route (503 when sending is off, 400 for a bad phone)."""
    if fields.get("send_to") is None:
        return None
    phone, caption, _ = check_send_request(settings, fields["send_to"],
                                           fields.get("caption") or None)
    return phone, caption


async def enqueue_send(request: web.Request, media_id: int, phone: str,
                       caption: str | None, reply_to: str | None) -> dict[str, Any]:
    """Commit a delivery with its audit row (the upload route's send_to uses this too)."""
    # The row names the number sent to: who sent what to whom is the point of it.
    async with audited(request, "zapi_send", media_id=media_id,
                       outcome=f"ok: to {phone}") as audit:
        row = await request.app[OUTBOX].enqueue(media_id, phone, caption, reply_to,
                                                        audit=audit)
    return {"delivery_id": row["id"], "state": row["state"], "url": delivery_path(row["id"])}


async def send_media(request: web.Request) -> web.Response:
    """POST /api/media/{id}/send {"phone", "caption"?, "reply_to"?} -> 202."""
    media_id = _media_id(request)
    settings = request.app[SETTINGS]
    if not settings.zapi.enabled:
        raise ZapiDisabled()
    data = await read_json_object(request)
    phone, caption, reply_to = check_send_request(settings, data.get("phone"),
                                                  data.get("caption"), data.get("reply_to"))
    body = await enqueue_send(request, media_id, phone, caption, reply_to)
    return web.json_response(body, status=202, headers={"Location": body["url"]})


async def get_delivery(request: web.Request) -> web.Response:
    delivery_id = parse_id(request.match_info["deliveryId"])
    if delivery_id is None:
        raise DeliveryNotFound()
    return web.json_response(delivery_json(await request.app[OUTBOX].get(delivery_id)))


async def list_media_deliveries(request: web.Request) -> web.Response:
    media_id = _media_id(request)
    await request.app[STORE].stat(media_id)   # 404 for unknown media
    rows = await request.app[OUTBOX].list_for_media(media_id)
    return web.json_response({"media_id": media_id,
                              "deliveries": [delivery_json(r) for r in rows]})
