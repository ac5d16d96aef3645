"""What handlers ask of access control, in one line each.

- ``upload_limit(request, limit)``: an upload token may lower the size limit;
- ``check_upload_message(request, message_id)``: a token uploads to its message only;
- ``check_may_send(request)``: only a key with the send route's scope may ask an
  upload to be sent on to WhatsApp (``send_to``); an upload token may not;
- ``media_cache_control(request)``: Cache-Control for the bytes, by how they were read;
- ``refuse_before_body(request)``: for ``Expect: 100-continue``, which aiohttp answers
  before any middleware runs: a request with no credential at all is refused before
  its client sends the body.
"""
from __future__ import annotations

import time

from aiohttp import web

from server.errors import TokenNotAllowed, TokenWrongMessage, Unauthorized, render
from server.security.access import ADMIN, PRINCIPAL, SEND_SCOPE, covers
from server.security.serving import cache_control
from server.settings import SETTINGS

SHARED_CACHE_EXPIRES = "@1"


def upload_limit(request: web.Request, limit: int) -> int:
    principal = request.get(PRINCIPAL)
    if principal is not None and principal.kind == "token" and principal.max_bytes:
        return min(limit, principal.max_bytes)
    return limit


def check_upload_message(request: web.Request, message_id: int) -> None:
    principal = request.get(PRINCIPAL)
    if principal is not None and principal.kind == "token" \
            and principal.message_id != message_id:
        raise TokenWrongMessage()


def check_may_send(request: web.Request) -> None:
    """403 unless the caller may ask for a send as POST /api/media/{id}/send would let
    it: a key whose scope covers SEND_SCOPE. A token is for uploading one file to one
    message; with send_to it would send any caption to any number."""
    principal = request.get(PRINCIPAL)
    if principal is None or principal.kind != "key" \
            or not covers(principal.scope or "", SEND_SCOPE):
        error = TokenNotAllowed("an upload token cannot ask for a send (send_to): that "
                                "takes an API key allowed to send")
        error.close_connection = True   # the body, if any, is not read further
        raise error


def is_admin(request: web.Request) -> bool:
    """Whether the request is made with an admin key (quarantine details in JSON,
    other keys' usage)."""
    principal = request.get(PRINCIPAL)
    return principal is not None and principal.kind == "key" \
        and covers(principal.scope or "", ADMIN)


def media_cache_control(request: web.Request) -> str:
    settings = request.app[SETTINGS]
    principal = request.get(PRINCIPAL)
    kind = "public" if settings.security.public_read else (principal.kind if principal else "")
    return cache_control(kind, expires=principal.expires if principal else None,
                         now=time.time(), ttl=settings.security.url_ttl_seconds)


def proxy_cache_headers(request: web.Request) -> dict[str, str]:
    """For the shared cache in front (deploy/nginx-media-store.conf), on public reads
    only: keep the copy, but as already stale (an expiry at 1970-01-01T00:00:01), so
    nginx revalidates it on every read (a 304 from us, the bytes stay in nginx) and a
    quarantine or a delete is never answered from it. A relative time would leave a
    window (1 s at the least) and 0 would not store it at all. nginx reads
    X-Accel-Expires and never passes it on: clients still get the year."""
    if request.app[SETTINGS].security.public_read:
        return {"X-Accel-Expires": SHARED_CACHE_EXPIRES}
    return {}


def refuse_before_body(request: web.Request) -> web.Response | None:
    """A 401 for a request that carries no credential of any kind, else None (the
    middleware then checks the credential properly, once the request is dispatched)."""
    if request.headers.get("Authorization") or request.query.get("token"):
        return None
    error = Unauthorized(headers={"WWW-Authenticate": 'Bearer realm="media-store"'})
    error.close_connection = True   # the body will not be read
    return render(error)
