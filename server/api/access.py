"""Access-control routes: who a key is, upload tokens for phones, and the audit log for
operators."""
from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

from server.api.jsonbody import read_json_object
from server.errors import BadRequest, MessageNotFound
from server.http import paging
from server.http.params import parse_id
from server.security import PRINCIPAL, SIGNER
from server.security.audit import audited, search
from server.settings import SETTINGS
from server.store.media import STORE

TOKEN_TTL_DEFAULT = 3600
TOKEN_TTL_MAX = 7 * 86400
AUDIT_LIMIT_DEFAULT = 100
AUDIT_LIMIT_MAX = 1000
MAX_JSON_BYTES = 4096


async def whoami(request: web.Request) -> web.Response:
    """GET /api/whoami → {"name", "scope"}: the key's own name and scope, so a client
    (the console) offers only what the key may do."""
    principal = request[PRINCIPAL]
    return web.json_response({"name": principal.name, "scope": principal.scope},
                             headers={"Cache-Control": "no-store"})


def _int_field(body: dict, name: str, default: int | None, lo: int, hi: int) -> int:
    value = body.get(name, default)
    if value is None:
        raise BadRequest(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BadRequest(f"{name} must be an integer between {lo} and {hi}")
    return value


async def create_upload_token(request: web.Request) -> web.Response:
    """POST /api/media/upload-tokens {"message_id", "max_bytes"?, "ttl_seconds"?} → 201
    {"token", "upload_url", "expires_at"}: what a phone uploads with, keyless."""
    settings = request.app[SETTINGS]
    body = await read_json_object(request, MAX_JSON_BYTES, empty={})
    message_id = _int_field(body, "message_id", None, 1, 2**31 - 1)
    max_bytes = _int_field(body, "max_bytes", settings.uploads.max_bytes, 1,
                           settings.uploads.max_bytes)
    ttl = _int_field(body, "ttl_seconds", TOKEN_TTL_DEFAULT, 1, TOKEN_TTL_MAX)
    store = request.app[STORE]
    async with audited(request, "token_issued", message_id=message_id) as audit:
        if not await store.message_exists(message_id):
            raise MessageNotFound()
        principal = request.get(PRINCIPAL)
        token, exp = request.app[SIGNER].upload_token(
            message_id, max_bytes, ttl, principal.key_id if principal else None)
        await store.write_audit(audit)
    return web.json_response(
        {"token": token,
         "upload_url": f"/api/media/upload-production?message_id={message_id}",
         "expires_at": datetime.fromtimestamp(exp, timezone.utc).isoformat(),
         "message_id": message_id, "max_bytes": max_bytes},
        status=201, headers={"Cache-Control": "no-store"})


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest("since must be an ISO 8601 date or time") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


async def search_audit(request: web.Request) -> web.Response:
    """GET /api/audit?media_id=&action=&actor=&since=&limit=&cursor=: newest first,
    in pages (keyset on (at, id): ``next_cursor`` goes back as ``cursor``)."""
    q = request.query
    media_id = None
    if q.get("media_id"):
        media_id = parse_id(q["media_id"])
        if media_id is None:
            raise BadRequest("media_id must be a positive integer")
    limit = AUDIT_LIMIT_DEFAULT
    if q.get("limit"):
        limit = parse_id(q["limit"]) or 0
        if not 1 <= limit <= AUDIT_LIMIT_MAX:
            raise BadRequest(f"limit must be between 1 and {AUDIT_LIMIT_MAX}")
    action = q.get("action") or None
    if action is not None and (len(action) > 32 or not action.isascii()):
        raise BadRequest("unknown action")
    actor = q.get("actor") or None
    if actor is not None and len(actor) > 120:
        raise BadRequest("actor is at most 120 characters")
    after = paging.decode_cursor(q.get("cursor"), max_id=2**63 - 1)
    rows = await search(request.app[STORE], media_id=media_id, action=action,
                        actor=actor, since=_since(q.get("since")), limit=limit + 1,
                        after=None if after is None else (after.created_at, after.id))
    page = rows[:limit]
    last = (paging.encode_cursor(paging.Position(page[-1]["at"], page[-1]["id"]))
            if len(rows) > limit else None)
    entries = [{**r, "at": r["at"].isoformat()} for r in page]
    return web.json_response({"entries": entries, "next_cursor": last},
                             headers={"Cache-Control": "no-store"})
