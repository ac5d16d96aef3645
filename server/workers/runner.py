"""Starts the background loops with the application and stops them with it."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from server.asyncutil import cancel_and_wait

log = logging.getLogger(__name__)

Worker = Callable[[web.Application], Awaitable[None]]


def workers_ctx(workers: list[Worker]):
    """A cleanup_ctx entry: each worker runs as a task while the app runs; on shutdown
    each is cancelled and awaited, so none outlives the pool it uses."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(w(app), name=f"worker:{w.__name__}") for w in workers]
        yield
        await asyncio.gather(*(cancel_and_wait(t) for t in tasks))
        for t in tasks:
            if not t.cancelled() and t.exception() is not None:
                log.error("%s had failed", t.get_name(), exc_info=t.exception())
    return ctx
