"""Request ids: honoured from the client when sane, generated otherwise.

The id travels in ``X-Request-ID`` both ways and in every log line of the request, so
one upload can be followed through a proxy's log, ours and the client's report.
"""
from __future__ import annotations

import contextvars
import re
import uuid

from aiohttp import web

HEADER = "X-Request-ID"
# What proxies and tracing systems send (UUIDs, hex, base64url, dotted/dashed ids),
# bounded so a client cannot bloat every log line or smuggle text into it.
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/=-]{0,127}")

# The id of the request being handled in this task; log records pick it up from here.
current: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id",
                                                                    default=None)
REQUEST_ID = web.RequestKey("request_id", str)
# The name of the API key the request was made with, for the access log (set by the
# access middleware, which knows the caller; never the key itself).
KEY_NAME = web.RequestKey("key_name", str)


def accept_request_id(value: str | None) -> str | None:
    """The client's id if it is one we can log and echo safely, else None."""
    if value is None or not _SANE.fullmatch(value):
        return None
    return value


def new_request_id() -> str:
    return uuid.uuid4().hex


@web.middleware
async def request_id_middleware(request: web.Request, handler):
    rid = accept_request_id(request.headers.get(HEADER)) or new_request_id()
    request[REQUEST_ID] = rid
    token = current.set(rid)
    try:
        return await handler(request)
    finally:
        current.reset(token)


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, errors and aiohttp's own included."""
    rid = request.get(REQUEST_ID)
    if rid is not None:
        response.headers[HEADER] = rid
