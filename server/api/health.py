"""Operations routes: liveness, readiness, metrics."""
from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from server.observability.metrics import METRICS
from server.store.media import STORE
from server.zapi.outbox import OUTBOX

# The totals scan media_files; scrapers come every few seconds from every replica, so
# the scan runs at most this often per instance.
TOTALS_EVERY_SECONDS = 60.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready only when the database answers: a proxy then routes around a broken instance."""
    await request.app[STORE].ping(timeout=2)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    now = time.monotonic()
    if now >= m.totals_due:
        for media_type, files, nbytes in await request.app[STORE].totals():
            m.stored_files.labels(media_type).set(files)
            m.stored_bytes.labels(media_type).set(nbytes)
        m.totals_due = now + TOTALS_EVERY_SECONDS
    m.sample_store(request.app[STORE])
    outbox = request.app.get(OUTBOX)
    if outbox is not None:
        for state, n in (await outbox.depth()).items():
            m.outbox.labels(state).set(n)
    body = m.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST,
                                            "Cache-Control": "no-store"})
