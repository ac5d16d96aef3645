"""Counting refusals of credentials that are not valid, instead of listing them.

A made-up ``Bearer x`` or a bad ``sig`` costs a client nothing to send: one audit row
each let one client write ~1,390 rows a second. Such refusals are counted into one row
per (minute, client address, actor, outcome) of ``media_audit_log`` (its ``minute`` and
``count`` columns, migration 0013).

How, and why this way:
- The database row is an upsert on a partial unique index (``count = count + n``), so
  every instance and worker process counts into the same row with no coordination.
- In each process, only the first refusal of a (minute, address, actor, outcome) is
  written at once (so it shows up in the log without delay); the next ones only raise
  a counter in memory, added to the row by :meth:`RefusalCounter.flush` every
  FLUSH_SECONDS and at shutdown. One upsert per key per process per flush, whatever
  the rate: a flood costs no database round trip per request and no pooled
  connection queued behind one hot row's lock.
- Memory is bounded: at most MAX_KEYS keys wait in memory; past that a refusal is
  written at once, as the first of its key is.
- What is lost: up to FLUSH_SECONDS of counts if the process dies (never a row).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

from aiohttp import web

from server.asyncutil import cancel_and_wait
from server.store.sqlfiles import Q

log = logging.getLogger(__name__)

FLUSH_SECONDS = 10.0
MAX_KEYS = 10_000

Key = tuple[int, str | None, str, str]   # (minute number, address, actor, outcome)


@dataclasses.dataclass
class _Pending:
    entry: object      # the AuditEntry of the key's first refusal (user agent, request id)
    count: int = 0     # refusals since the last write


def minute_of(now: float) -> int:
    """The number of the minute ``now`` (unix seconds) falls in."""
    return int(now // 60)


class RefusalCounter:
    """One per application: counts refusals, writes them as counted audit rows."""

    def __init__(self, store, *, clock: Callable[[], float] = time.time,
                 max_keys: int = MAX_KEYS):
        self.store = store
        self.clock = clock
        self.max_keys = max_keys
        self._pending: dict[Key, _Pending] = {}

    async def count(self, entry) -> None:
        """Count one refusal (an AuditEntry); the first of its key is written now."""
        key = (minute_of(self.clock()), entry.client_addr, entry.actor, entry.outcome)
        pending = self._pending.get(key)
        if pending is not None:
            pending.count += 1
            return
        if len(self._pending) < self.max_keys:
            self._pending[key] = _Pending(entry)
        await self._write(key, entry, 1)

    async def flush(self) -> None:
        """Add the counts held in memory to their rows; forget past minutes' keys."""
        current = minute_of(self.clock())
        for key, pending in list(self._pending.items()):
            if pending.count:
                n, pending.count = pending.count, 0
                await self._write(key, pending.entry, n)
            if key[0] < current:
                del self._pending[key]

    async def _write(self, key: Key, entry, n: int) -> None:
        minute = datetime.fromtimestamp(key[0] * 60, timezone.utc)
        try:
            async with self.store.connection() as conn:
                await Q.count_refusal.execute(
                    conn, actor=entry.actor, action=entry.action,
                    client_addr=entry.client_addr, user_agent=entry.user_agent,
                    request_id=entry.request_id, outcome=entry.outcome, minute=minute, n=n)
        except Exception as e:
            # Best effort, as every failure audit: the refusal itself is answered anyway.
            log.warning("could not count %d refusal(s) %s: %s: %s", n, key,
                        e.__class__.__name__, e)

    async def run(self) -> None:
        """Flush every FLUSH_SECONDS until cancelled."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()


REFUSALS = web.AppKey("refusals", RefusalCounter)


def setup_refusals(app: web.Application, store_key) -> None:
    """A counter for ``app``, flushed periodically and at shutdown (while the store is
    still open: add after the database context)."""
    async def ctx(app: web.Application):
        counter = RefusalCounter(app[store_key])
        app[REFUSALS] = counter
        task = asyncio.create_task(counter.run())
        yield
        # Its flush waits on the pool, where a cancel can be lost (asyncutil).
        await cancel_and_wait(task)
        await asyncio.shield(counter.flush())
    app.cleanup_ctx.append(ctx)
