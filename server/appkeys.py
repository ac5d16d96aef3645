"""Typed keys for what the application holds."""
from __future__ import annotations

from aiohttp import web

from server.limits.uploads import UploadSlots
from server.metrics import Metrics
from server.settings import Settings
from server.store.media import MediaStore

SETTINGS = web.AppKey("settings", Settings)
DSN = web.AppKey("dsn", str)
STORE = web.AppKey("store", MediaStore)
METRICS = web.AppKey("metrics", Metrics)
UPLOAD_SLOTS = web.AppKey("upload_slots", UploadSlots)
