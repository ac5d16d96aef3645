"""Small asyncio helpers shared by the store, the sending path and the workers."""
from __future__ import annotations

import asyncio


def consume(fut: asyncio.Future) -> None:
    """Done callback for a future (or task) whose failure may have nobody left to await
    it (a cancelled handler, a client gone, an abandoned ping): asyncio would otherwise
    log it as never retrieved."""
    if not fut.cancelled():
        fut.exception()


# How long a cancelled task may take to end before it is cancelled again: longer than
# any task's own cleanup after its cancel (the heartbeat's goodbye is bounded at 2 s),
# which a second cancel would cut short.
RECANCEL_SECONDS = 5.0


async def cancel_and_wait(task: asyncio.Future) -> None:
    """Cancel ``task`` and wait for it to end, cancelling it again every
    RECANCEL_SECONDS while it runs on. Its outcome is left on it; nothing is raised.

    One cancel is not always enough: before Python 3.12, ``asyncio.wait_for`` (and
    asyncpg's copy of it, behind ``pool.acquire(timeout=...)``) returns the inner
    result when the cancel lands just as that result arrives, and the cancel is lost.
    A loop that lost it runs on, and whoever awaits it waits forever: a worker process
    told to stop that never exits."""
    task.cancel()
    while not task.done():
        await asyncio.wait({task}, timeout=RECANCEL_SECONDS)
        task.cancel()
