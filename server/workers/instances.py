"""Workers every instance runs for the others: its heartbeat (and the reclaiming of
uploads left by instances that stopped beating), and the deletion feed that keeps its
metadata cache coherent with deletes made anywhere."""
from __future__ import annotations

import asyncio
import logging
import os
import socket

from aiohttp import web

from server.observability.metrics import METRICS
from server.settings import SETTINGS
from server.store.invalidation import follow_deletions
from server.store.media import STORE
from server.store.pool import DSN

log = logging.getLogger(__name__)


async def heartbeat(app: web.Application) -> None:
    """Beat every MEDIA_HEARTBEAT_SECONDS; reclaim dead instances' uploads on each beat."""
    settings, store = app[SETTINGS], app[STORE]
    hostname, pid = socket.gethostname()[:255], os.getpid()
    try:
        while True:
            try:
                await store.beat(hostname, pid)
                removed = await store.reclaim_dead_instance_uploads(
                    settings.workers.instance_dead_seconds)
                if removed:
                    app[METRICS].reclaimed.inc(removed)
                    log.info("reclaimed %d upload(s) of instances that stopped", removed)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("heartbeat failed (%s); will retry", e.__class__.__name__)
            await asyncio.sleep(settings.workers.heartbeat_seconds)
    finally:
        # A clean stop says goodbye; its uploads were aborted by their requests.
        try:
            await asyncio.wait_for(asyncio.shield(store.leave()), 2)
        except Exception:
            pass


async def deletion_feed(app: web.Application) -> None:
    store = app[STORE]
    store.trust_cache(False)   # until the feed is connected
    await follow_deletions(store, app[DSN])
