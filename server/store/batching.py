"""Single-chunk reads gathered into one query while the pool is busy.

A photo or a voice note that is not in the chunk cache costs a query of its own. When
every pooled connection is taken, those queries queue for one (server/fairgate.py),
and under load that queue is most of a miss's time. A read that arrives while a batch
is queued joins it: one place in the queue, one round trip for all of them, and one
read per chunk however many requests want it (a photo just sent to a large group).
While the pool has room, reads go straight to it (the store decides): nothing waits
for company.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from server.asyncutil import consume

Key = tuple[int, int, int]             # (media_id, content_id, seq)
Connect = Callable[[], AbstractAsyncContextManager]
Query = Callable[[object, list[Key]], Awaitable[dict[Key, bytes]]]

# A batch's rows arrive together: at most this many chunks (256 KiB each by default,
# about 350 KB of base64) in one answer; a read past it starts the next batch.
MAX_BATCH = 16


class ReadBatcher:
    """Reads of single chunks, gathered while they wait for a connection. One event
    loop, no lock."""

    def __init__(self, connect: Connect, query: Query, max_batch: int = MAX_BATCH):
        self._connect = connect
        self._query = query
        self._max = max(1, max_batch)
        self._open: dict[Key, asyncio.Future] | None = None   # still taking reads
        self._wanted: dict[Key, asyncio.Future] = {}   # every read not yet answered
        self._tasks: set[asyncio.Task] = set()
        self.queries = 0       # round trips made, and chunks they read (for /metrics)
        self.chunks = 0

    def read(self, key: Key) -> Awaitable[bytes | None]:
        """The chunk's base64, or None when the database has no such chunk."""
        fut = self._wanted.get(key)
        if fut is None:
            batch = self._open
            if batch is None or len(batch) >= self._max:
                batch = self._open = {}
                task = asyncio.ensure_future(self._run(batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            fut = asyncio.get_running_loop().create_future()
            # Every reader may have gone (clients hang up): nobody retrieves the error.
            fut.add_done_callback(consume)
            batch[key] = fut
            self._wanted[key] = fut
        # One reader cancelled (its client gone) must not cancel the read for the rest.
        return asyncio.shield(fut)

    async def _run(self, batch: dict[Key, asyncio.Future]) -> None:
        try:
            async with self._connect() as conn:
                if self._open is batch:
                    self._open = None       # from here on, reads start the next batch
                keys = list(batch)
                rows = await self._query(conn, keys)
            self.queries += 1
            self.chunks += len(keys)
            for key, fut in batch.items():
                if not fut.done():
                    fut.set_result(rows.get(key))
        except BaseException as e:
            for fut in batch.values():
                if fut.done():
                    continue
                if isinstance(e, Exception):
                    fut.set_exception(e)
                else:
                    fut.cancel()        # the batch itself was cancelled (shutdown)
            if not isinstance(e, Exception):
                raise
        finally:
            if self._open is batch:
                self._open = None
            for key, fut in batch.items():
                if self._wanted.get(key) is fut:
                    del self._wanted[key]

    async def aclose(self) -> None:
        """Cancel the batches still waiting (shutdown)."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
