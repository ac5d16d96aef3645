"""The janitor: reclaims uploads abandoned by crashed instances or vanished clients, and
keeps the audit log to MEDIA_AUDIT_RETENTION_DAYS."""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from server.hygiene.quotas import release_stale
from server.observability.metrics import METRICS
from server.security.audit import prune
from server.settings import SETTINGS
from server.store.media import STORE
from server.tus.store import reclaim_expired_tus

log = logging.getLogger(__name__)


async def janitor(app: web.Application) -> None:
    """Every MEDIA_JANITOR_INTERVAL_SECONDS, delete uploads idle for
    MEDIA_UPLOAD_STALE_SECONDS, resumable uploads past MEDIA_TUS_EXPIRY_SECONDS, content
    no media shows any more after MEDIA_ORPHAN_GRACE_SECONDS, and
    audit rows past MEDIA_AUDIT_RETENTION_DAYS (bounded batches: a backlog drains over
    several runs). A failed run is logged and retried next time."""
    settings = app[SETTINGS]
    while True:
        try:
            removed = await app[STORE].reclaim_stale_uploads(
                settings.uploads.stale_seconds)
            removed += await reclaim_expired_tus(app)
            if removed:
                app[METRICS].reclaimed.inc(removed)
                log.info("janitor reclaimed %d abandoned upload(s)", removed)
            contents, freed = await app[STORE].reclaim_orphaned_contents(
                settings.store.orphan_grace_seconds)
            if contents:
                log.info("janitor reclaimed %d content(s) no media shows (%d bytes)",
                         contents, freed)
            # Quota reservations of uploads whose instance died (server/hygiene).
            await release_stale(app[STORE], settings.uploads.stale_seconds)
            pruned = await prune(app[STORE], settings.security.audit_retention_days)
            if pruned:
                log.info("janitor deleted %d audit row(s) older than %d days", pruned,
                         settings.security.audit_retention_days)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("janitor run failed; will retry", exc_info=True)
        await asyncio.sleep(settings.workers.janitor_interval_seconds)
