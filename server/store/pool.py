"""The asyncpg pool: opened and closed with the application."""
from __future__ import annotations

import asyncio
import collections
import json

import asyncpg

from server.settings import Settings


async def _init_connection(conn: asyncpg.Connection) -> None:
    # dimensions is JSONB: hand Python objects in and out, not JSON text.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads,
                              schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Released connections skip asyncpg's reset query (RESET ALL; UNLISTEN *; CLOSE
    ALL; pg_advisory_unlock_all()): a round trip on every release, a sixth of a
    download's time and as much as the query itself for a small photo. Nothing here
    leaves session state on a pooled connection: settings are changed only with
    set_config(..., true), for one transaction; LISTEN has a connection of its own
    (store/invalidation.py); the one session lock (legacy/lock.py) is released by its
    holder or goes with its connection. asyncpg still rolls back an open transaction
    before calling this."""


async def create_pool(dsn: str, settings: Settings, *,
                      min_size: int | None = None, admin: bool = False) -> asyncpg.Pool:
    """The pool; ``admin``: for a command line tool, whose statements are bounded by
    DB_ADMIN_COMMAND_TIMEOUT_SECONDS instead of the requests' DB_COMMAND_TIMEOUT_SECONDS."""
    return await asyncpg.create_pool(
        dsn,
        min_size=settings.pool_min if min_size is None else min_size,
        max_size=settings.pool_max,
        init=_init_connection,
        reset=_keep_session,
        # Idle connections are recycled so a pool sized for peaks shrinks again.
        max_inactive_connection_lifetime=300,
        command_timeout=settings.db_admin_command_timeout if admin else
        settings.db_command_timeout,
    )


class FairGate:
    """First come, first served admission to the pool, ``limit`` holders at a time.

    asyncpg's pool waits in an asyncio.Queue, which lets a newcomer take a connection
    just freed for a waiter that has not run yet; the waiter then queues again at the
    back. Under saturation some requests lost that race again and again: 128 clients
    on a pool of 10 saw a p99 near a second with a p50 of 7 ms. Here a freed place is
    handed to the oldest waiter directly, and newcomers queue behind it."""

    def __init__(self, limit: int):
        self.limit = max(1, limit)
        self.in_use = 0
        self._waiters: collections.deque[asyncio.Future] = collections.deque()

    async def acquire(self, timeout: float | None = None) -> None:
        """Wait for a place; asyncio.TimeoutError after ``timeout`` seconds."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()          # handed over just as we gave up: pass it on
            else:
                fut.cancel()
                self._waiters.remove(fut)
            raise

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)    # the place passes on: in_use is unchanged
                return
        self.in_use -= 1
