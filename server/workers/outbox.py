"""The Z-API outbox worker: one per server instance, alongside the janitor. The
outbox's contract (claims, leases, outcomes) is in server/zapi/outbox.py."""
from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server.observability.metrics import METRICS
from server.security import SIGNER
from server.settings import SETTINGS
from server.store.media import STORE
from server.zapi.client import ZapiClient
from server.zapi.outbox import OUTBOX, Outbox


async def zapi_ctx(app: web.Application) -> AsyncIterator[None]:
    """A cleanup_ctx entry after the database's: the outbox (its rows are readable
    even with sending off) and, when credentials are set, the Z-API client."""
    settings = app[SETTINGS]
    client = ZapiClient(settings) if settings.zapi.enabled else None
    outbox = Outbox(app[STORE], settings, client)
    metrics = app[METRICS]
    outbox.on_outcome = lambda _id, kind: metrics.zapi_outcomes.labels(kind).inc()
    signer = app.get(SIGNER)
    if signer is not None:
        # Z-API downloads without an API key: hand it a signed URL in url mode.
        outbox.media_url = signer.media_url
    app[OUTBOX] = outbox
    yield
    if client is not None:
        await client.close()


async def outbox_worker(app: web.Application) -> None:
    """Claim due deliveries and send them until the application stops."""
    await app[OUTBOX].run()
