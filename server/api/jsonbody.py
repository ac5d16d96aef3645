"""Small JSON request bodies (send, upload-tokens, import-url, the Z-API webhook): read
bounded, parsed, checked. The one place a request body becomes JSON, so every route
answers bad JSON alike: 400 ``invalid_json``, never a 500."""
from __future__ import annotations

import json

from aiohttp import web

from server.errors import BadRequest, InvalidJson, PayloadTooLarge
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


def parse_json(body: bytes) -> object:
    """``body`` as JSON, or InvalidJson (400): not UTF-8, not JSON, or nested deeper
    than the interpreter's recursion limit (``[`` x 5000 raises RecursionError inside
    the decoder, which is bad input like any other, not a server fault)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidJson() from None
    except RecursionError:
        raise InvalidJson("the body is nested too deeply") from None


async def read_json(request: web.Request, max_bytes: int = MAX_JSON_BYTES) -> object:
    """The body as any JSON value; 400 ``invalid_json`` / 413 (too big)."""
    return parse_json(await read_bounded(request, max_bytes))


async def read_json_object(request: web.Request, max_bytes: int = MAX_JSON_BYTES, *,
                           empty: dict | None = None) -> dict:
    """The body as a JSON object, or a 400 (not JSON, not an object) / 413 (too big).
    ``empty``: what an empty body stands for (None: an empty body is not JSON)."""
    body = await read_bounded(request, max_bytes)
    data = dict(empty) if empty is not None and not body.strip() else parse_json(body)
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
