"""Small JSON request bodies (the send and import routes): read bounded, parsed, checked."""
from __future__ import annotations

import json

from aiohttp import web

from server.errors import BadRequest, PayloadTooLarge
from server.http.params import parse_id

MAX_JSON_BYTES = 64 * 1024


async def read_bounded(request: web.Request, max_bytes: int) -> bytes:
    """The whole body, or 413 as soon as it exceeds ``max_bytes`` (never read further)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge("the request body is too large")
    body = bytearray()
    # read(n) returns what has arrived, not n bytes: loop to the end of the body.
    while piece := await request.content.read(max_bytes + 1 - len(body)):
        body += piece
        if len(body) > max_bytes:
            raise PayloadTooLarge("the request body is too large")
    return bytes(body)


async def read_json_object(request: web.Request, max_bytes: int = MAX_JSON_BYTES) -> dict:
    """The body as a JSON object, or a 400 (not JSON, not an object) / 413 (too big)."""
    body = await read_bounded(request, max_bytes)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body must be JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def optional_str(data: dict, name: str, max_len: int) -> str | None:
    """A string field that may be absent or null; 400 on another type or length."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise BadRequest(f"{name} must be a string of at most {max_len} characters")
    return value


def required_id(data: dict, name: str, error: type[Exception] = BadRequest) -> int:
    """A positive int32 id given as a number or a string of digits."""
    value = data.get(name)
    if isinstance(value, bool):
        value = None
    parsed = parse_id(str(value)) if isinstance(value, (int, str)) else None
    if parsed is None:
        raise error(f"{name} must be an integer between 1 and 2147483647")
    return parsed
