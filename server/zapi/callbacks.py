"""What Z-API's webhook callbacks mean for our deliveries, and the webhook's secret
check: pure, for the handler in server/api/zapi_webhook.py.

Unknown event types and fields are ignored (None), since an error would only make Z-API
retry or disable the webhook.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
from datetime import datetime, timezone

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
