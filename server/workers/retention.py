"""The retention worker: MEDIA_RETENTION applied every MEDIA_JANITOR_INTERVAL_SECONDS,
by every instance, in the store's small batches (server/store/purge.py). Instances
running it at once take different batches (SKIP LOCKED) rather than wait on each other."""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from server.observability.metrics import METRICS
from server.retention.rules import selections
from server.settings import SETTINGS
from server.store.media import STORE
from server.store.purge import Purged, purge

log = logging.getLogger(__name__)

ACTOR = "retention"   # the audit rows' actor
# Batches per rule per run: a backlog (the first run after MEDIA_RETENTION is set on
# years of media) drains over several runs, leaving the database to others between.
MAX_BATCHES_PER_RUN = 100


async def retention(app: web.Application) -> None:
    """Purge what each rule selects, then wait for the next run. A failed run is logged
    and retried next time; a batch committed before the failure stays purged."""
    settings, metrics = app[SETTINGS], app[METRICS]
    sels = selections(settings.workers.retention)

    def count(went: Purged) -> None:
        for media_type, (files, _) in went.by_type.items():
            metrics.purged.labels(media_type).inc(files)

    while True:
        for sel in sels:
            try:
                went = await purge(app[STORE], sel, ACTOR, max_batches=MAX_BATCHES_PER_RUN,
                                   on_batch=count)
                if went.files:
                    log.info("retention (%s) purged %d media, %d bytes", sel.label,
                             went.files, went.bytes)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("retention run (%s) failed; will retry", sel.label,
                            exc_info=True)
        await asyncio.sleep(settings.workers.janitor_interval_seconds)
