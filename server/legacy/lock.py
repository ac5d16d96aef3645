"""One legacy run (import or clean-up) at a time per database."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from server.store.media import MediaStore
from server.store.pool import Connection
from server.store.sqlfiles import Q


class LegacyBusy(Exception):
    """Another import-legacy or cleanup-legacy is running against this database."""


@contextlib.asynccontextmanager
async def legacy_lock(store: MediaStore) -> AsyncIterator[Connection]:
    """Hold the session lock on a connection of its own while the block runs; the
    connection is yours for short reads. The lock dies with the session if we do."""
    async with store.connection() as conn:
        if not await Q.legacy_try_lock.fetchval(conn):
            raise LegacyBusy("another import-legacy or cleanup-legacy is running")
        try:
            yield conn
        finally:
            try:
                await Q.legacy_unlock.fetchval(conn)
            except BaseException:
                # Not unlocked (cancelled, timed out): the connection must not go back
                # to the pool still holding the lock (store/pool.py resets nothing).
                conn.terminate()
                raise
