"""The janitor: reclaims uploads abandoned by crashed instances or vanished clients."""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from server import appkeys
from server.tus.routes import reclaim_expired_tus

log = logging.getLogger(__name__)


async def janitor(app: web.Application) -> None:
    """Every MEDIA_JANITOR_INTERVAL_SECONDS, delete uploads idle for
    MEDIA_UPLOAD_STALE_SECONDS, and resumable uploads past MEDIA_TUS_EXPIRY_SECONDS. A failed run is logged and retried next time."""
    settings = app[appkeys.SETTINGS]
    while True:
        try:
            removed = await app[appkeys.STORE].reclaim_stale_uploads(
                settings.upload_stale_seconds)
            removed += await reclaim_expired_tus(app)
            if removed:
                app[appkeys.METRICS].reclaimed.inc(removed)
                log.info("janitor reclaimed %d abandoned upload(s)", removed)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("janitor run failed; will retry", exc_info=True)
        await asyncio.sleep(settings.janitor_interval_seconds)
