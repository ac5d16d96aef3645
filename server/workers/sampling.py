"""Each worker's store figures copied into its metrics on a timer, not only when scraped.

/metrics copies the answering worker's figures in (pool use, metadata cache hits and
misses, batched reads) before rendering every worker's. Under ``--workers N`` a
scraper's connection reaches one worker and, kept alive, stays with it: the other
workers' figures would be as old as their last scrape, or never written at all. Copied
every SAMPLE_EVERY_SECONDS as well, each worker's share is at most that old whichever
worker answers.
"""
from __future__ import annotations

import asyncio

from aiohttp import web

from server.observability.metrics import METRICS
from server.store.media import STORE

SAMPLE_EVERY_SECONDS = 1.0


async def metrics_sampler(app: web.Application) -> None:
    """Every SAMPLE_EVERY_SECONDS, this worker's store figures into its metrics (a few
    writes to its metrics files: nothing measurable)."""
    metrics, store = app[METRICS], app[STORE]
    while True:
        await asyncio.sleep(SAMPLE_EVERY_SECONDS)
        metrics.sample_store(store)
