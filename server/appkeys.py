"""Typed keys for what the application holds."""
from __future__ import annotations

from aiohttp import web

from server.runtime.sending import StreamSlots
from server.limits.uploads import UploadSlots
from server.metrics import Metrics
from server.processing.pipeline import Processing
from server.settings import Settings
from server.store.media import MediaStore
from server.zapi.outbox import Outbox

SETTINGS = web.AppKey("settings", Settings)
DSN = web.AppKey("dsn", str)
STORE = web.AppKey("store", MediaStore)
METRICS = web.AppKey("metrics", Metrics)
OUTBOX = web.AppKey("outbox", Outbox)
UPLOAD_SLOTS = web.AppKey("upload_slots", UploadSlots)
STREAM_SLOTS = web.AppKey("stream_slots", StreamSlots)
PROCESSING = web.AppKey("processing", Processing)
