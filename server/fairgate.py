"""First come, first served admission: at most ``limit`` holders at a time.

Two places queue work this way: requests waiting for a pooled connection
(store/media.py) and long reads waiting for a stream slot (runtime/sending.py). A freed
place is handed to the oldest waiter directly; a newcomer queues behind it. asyncpg's
own pool waits in an asyncio.Queue, which lets a newcomer take a connection freed for a
waiter that has not run yet, and the waiter then queues again at the back: under
saturation some requests lose that race again and again, and set the p99.
"""
from __future__ import annotations

import asyncio
import collections


class FairGate:
    """One event loop, no lock. A waiter holds nothing but its future."""

    def __init__(self, limit: int):
        self.limit = max(1, limit)
        self.in_use = 0
        self._waiters: collections.deque[asyncio.Future] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, timeout: float | None = None) -> None:
        """Wait for a place; asyncio.TimeoutError after ``timeout`` seconds."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiters.append(fut)
        expiry = None if timeout is None else loop.call_later(timeout, _expire, fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release()          # handed over just as we gave up: pass it on
            else:
                fut.cancel()
                self._waiters.remove(fut)
            raise
        finally:
            if expiry is not None:
                expiry.cancel()

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)    # the place passes on: in_use is unchanged
                return
        self.in_use -= 1


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(asyncio.TimeoutError())
