"""Starts the background loops with the application and stops them with it."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

Worker = Callable[[web.Application], Awaitable[None]]


def workers_ctx(workers: list[Worker]):
    """A cleanup_ctx entry: each worker runs as a task while the app runs; on shutdown
    each is cancelled and awaited, so none outlives the pool it uses."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(w(app), name=f"worker:{w.__name__}") for w in workers]
        yield
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
    return ctx
