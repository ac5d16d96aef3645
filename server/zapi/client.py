"""Z-API's send endpoints: which one per media type, the request body, and what an
answer means. Facts from ../shared/zapi.md; where Z-API's documentation is silent
(429s, auth failures' status codes) the reading here is defensive.

The instance id and token are in the URL path and the client token in a header: all
three are credentials. Nothing here puts the URL, the headers or an exception's text
(which can carry the URL) into an error message or a log line; outcomes carry only
the HTTP status, Z-API's own error text, or an exception's class name.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections.abc import AsyncIterator

import aiohttp

from server.settings import Settings

# media_type -> (endpoint, media field, optional fields it takes)
_ENDPOINTS = {
    "image": ("send-image", "image", ("caption",)),
    "video": ("send-video", "video", ("caption",)),
    "audio": ("send-audio", "audio", ()),          # voice notes too; no caption in Z-API
    "document": ("send-document/{ext}", "document", ("caption", "fileName")),
}
MAX_ERROR_TEXT = 300


@dataclasses.dataclass(frozen=True)
class SendRequest:
    """What one delivery posts: the endpoint path after the token, and the JSON body
    as a prefix and suffix around the media value (streamed between them)."""
    endpoint: str
    prefix: bytes
    suffix: bytes


def build_request(*, media_type: str, extension: str, mime_type: str, original_name: str,
                  phone: str, caption: str | None, reply_to: str | None,
                  media_url: str | None) -> SendRequest:
    """The endpoint and body for one media (pure). With ``media_url`` the media field is
    that URL; without, it is a data URI whose base64 the caller streams between
    ``prefix`` and ``suffix`` (base64 needs no JSON escaping)."""
    endpoint, field, optional = _ENDPOINTS[media_type]
    ext = "".join(c for c in extension.lower() if c.isalnum()) or "bin"
    endpoint = endpoint.format(ext=ext)
    body: dict[str, object] = {"phone": phone}
    if reply_to:
        body["messageId"] = reply_to
    if caption and "caption" in optional:
        body["caption"] = caption
    if "fileName" in optional:
        body["fileName"] = original_name
    if media_url is not None:
        body[field] = media_url
        return SendRequest(endpoint, json.dumps(body).encode(), b"")
    head = json.dumps(body)[:-1]     # '{"phone": ...' without its closing brace
    prefix = f'{head}, {json.dumps(field)}: "data:{mime_type};base64,'.encode()
    return SendRequest(endpoint, prefix, b'"}')


def base64_length(file_size: int) -> int:
    """Length of the base64 text of ``file_size`` bytes (padded)."""
    return 4 * math.ceil(file_size / 3)


# -- outcomes -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one attempt came to. kind: sent | retry | rate_limited | failed | unknown
    ('unknown': the request may have reached Z-API and no answer says what it did)."""
    kind: str
    error: str | None = None
    http_status: int | None = None
    zaap_id: str | None = None
    message_id: str | None = None
    retry_after: float | None = None


def _error_text(body: object, status: int) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return f"Z-API answered {status}: {body['error'][:MAX_ERROR_TEXT]}"
    return f"Z-API answered {status}"


def _retry_after(header: str | None) -> float | None:
    try:
        value = float(header) if header is not None else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value <= 3600 else None


def classify(status: int, body: object, retry_after: str | None = None) -> Outcome:
    """An HTTP answer as an outcome (pure). A 2xx counts only with a messageId; 5xx
    retry; 429 slows down; every other status is a refusal that retrying won't fix."""
    if 200 <= status < 300:
        if isinstance(body, dict) and isinstance(body.get("messageId"), str) \
                and body["messageId"]:
            zaap = body.get("zaapId")
            return Outcome("sent", http_status=status, message_id=body["messageId"],
                           zaap_id=zaap if isinstance(zaap, str) else None)
        return Outcome("failed", "Z-API answered 2xx without a messageId", status)
    if status == 429:
        return Outcome("rate_limited", _error_text(body, status), status,
                       retry_after=_retry_after(retry_after))
    if status >= 500:
        return Outcome("retry", _error_text(body, status), status)
    return Outcome("failed", _error_text(body, status), status)


def classify_exception(exc: BaseException) -> Outcome:
    """A failed request as an outcome (pure). Only a failure to connect proves that
    nothing reached Z-API (retry); anything after that (a timeout, a connection cut
    while sending or waiting) may have queued the message: unknown."""
    name = exc.__class__.__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError) or (
            isinstance(exc, aiohttp.ClientConnectorError)):
        return Outcome("retry", f"could not connect to Z-API ({name})")
    if isinstance(exc, asyncio.TimeoutError):
        return Outcome("unknown", "no answer from Z-API in time; the message may have "
                                  "been queued")
    return Outcome("unknown", f"the connection to Z-API broke after the request was "
                              f"sent ({name}); the message may have been queued")


class ZapiClient:
    """Posts to one Z-API instance. One connection per request (force_close): a reused
    keep-alive connection that the server already closed would fail in a way that
    cannot be told apart from a request that got through."""

    def __init__(self, settings: Settings):
        self._base = (f"{settings.zapi.base_url}/instances/{settings.zapi.instance_id}"
                      f"/token/{settings.zapi.token}/")
        self._headers = {"Client-Token": settings.zapi.client_token or "",
                         "Content-Type": "application/json"}
        timeout = aiohttp.ClientTimeout(total=settings.zapi.timeout,
                                        sock_connect=min(10.0, settings.zapi.timeout))
        self._session = aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(force_close=True),
            trust_env=False)

    def __repr__(self) -> str:
        return "ZapiClient(<credentials hidden>)"

    async def close(self) -> None:
        await self._session.close()

    async def post(self, endpoint: str, body: AsyncIterator[bytes], length: int) -> Outcome:
        """POST ``body`` (``length`` bytes, streamed) to ``endpoint``; never raises for
        a network failure, it becomes the outcome."""
        headers = {**self._headers, "Content-Length": str(length)}
        try:
            async with self._session.post(self._base + endpoint, data=body,
                                          headers=headers) as resp:
                raw = await resp.read()
                try:
                    parsed = json.loads(raw) if raw else None
                except ValueError:
                    parsed = None
                return classify(resp.status, parsed, resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            return classify_exception(e)
