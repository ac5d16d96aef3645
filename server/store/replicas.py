"""Read replicas: PostgreSQL streaming standbys that serve reads of complete media.

Only reads whose answer cannot change once it exists go to a replica: a complete file's
metadata and its chunks. Writes, listings and everything about uploads stay on the
primary. A replica may lag: media newer than what it has replayed is simply not there
yet, so a miss (no row, or missing chunks) is asked again of the primary; nobody gets a
404 for what they just uploaded. A replica that fails to answer is skipped at once and
probed in the background until it answers again; requests never wait on it twice.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from server.asyncutil import cancel_and_wait
from server.store.sqlfiles import Q

log = logging.getLogger(__name__)

T = TypeVar("T")

# Failures that say "this replica cannot answer now" (down, restarting, unreachable,
# saturated), as opposed to a bad statement, which would fail on the primary too.
UNAVAILABLE = (OSError, asyncio.TimeoutError, asyncpg.CannotConnectNowError,
               asyncpg.ConnectionDoesNotExistError, asyncpg.TooManyConnectionsError,
               asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
               asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CrashShutdownError)
PROBE_EVERY_SECONDS = 2.0


class ReadReplicas:
    """Round-robin over the replicas that answer."""

    def __init__(self, pools: list[asyncpg.Pool], *, acquire_timeout: float = 2.0):
        self.pools = pools
        self.acquire_timeout = acquire_timeout
        self._up = [True] * len(pools)
        self._turn = itertools.cycle(range(len(pools)))
        self._probes: set[asyncio.Task] = set()

    def healthy(self) -> list[bool]:
        return list(self._up)

    async def fetch(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T | None:
        """``work(conn)`` on the next replica that is up; None when none could answer."""
        for _ in range(len(self.pools)):
            i = next(self._turn)
            if not self._up[i]:
                continue
            try:
                async with self.pools[i].acquire(timeout=self.acquire_timeout) as conn:
                    return await work(conn)
            except UNAVAILABLE as e:
                self._mark_down(i, e)
        return None

    def _mark_down(self, i: int, error: BaseException) -> None:
        if not self._up[i]:
            return
        self._up[i] = False
        log.warning("read replica %d unavailable (%s); reading from the primary until "
                    "it answers again", i, error.__class__.__name__)
        task = asyncio.ensure_future(self._probe(i))
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _probe(self, i: int) -> None:
        while True:
            await asyncio.sleep(PROBE_EVERY_SECONDS)
            try:
                async with self.pools[i].acquire(timeout=self.acquire_timeout) as conn:
                    await asyncio.wait_for(Q.ping.fetchval(conn), self.acquire_timeout)
            except UNAVAILABLE:
                continue
            except Exception as e:   # answers, but oddly: still better than nothing
                log.info("read replica %d probe: %s", i, e.__class__.__name__)
            self._up[i] = True
            log.info("read replica %d answers again", i)
            return

    async def close(self) -> None:
        await asyncio.gather(*(cancel_and_wait(t) for t in list(self._probes)))
        await asyncio.gather(*(p.close() for p in self.pools), return_exceptions=True)


