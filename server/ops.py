"""Operations: liveness, readiness, metrics, and the janitor for abandoned uploads."""
from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import keys
from .errors import ServiceUnavailable
from .sqlfiles import Q

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready only when the database answers: a proxy then routes around a broken instance."""
    pool = request.app[keys.POOL]
    try:
        async with pool.acquire(timeout=2) as conn:
            await Q.ping.fetchval(conn)
    except Exception as e:
        raise ServiceUnavailable() from e
    return web.json_response({"status": "ready"})


# The totals scan media_files; scrapers come every few seconds from every replica, so
# the scan runs at most this often per instance.
TOTALS_EVERY_SECONDS = 60.0


async def metrics(request: web.Request) -> web.Response:
    m = request.app[keys.METRICS]
    now = time.monotonic()
    if now >= m.totals_due:
        async with request.app[keys.STORE].connection() as conn:
            rows = await Q.media_totals.fetch(conn)
        for r in rows:
            m.stored_files.labels(r["media_type"]).set(r["files"])
            m.stored_bytes.labels(r["media_type"]).set(r["bytes"])
        m.totals_due = now + TOTALS_EVERY_SECONDS
    body = generate_latest(m.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST,
                                            "Cache-Control": "no-store"})


async def janitor(app: web.Application) -> None:
    """Periodically reclaim uploads abandoned by crashed instances or vanished clients."""
    settings = app[keys.SETTINGS]
    while True:
        try:
            removed = await app[keys.STORE].reclaim_stale_uploads(settings.upload_stale_seconds)
            if removed:
                app[keys.METRICS].reclaimed.inc(removed)
                log.info("janitor reclaimed %d abandoned upload(s)", removed)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("janitor run failed; will retry", exc_info=True)
        await asyncio.sleep(settings.janitor_interval_seconds)
