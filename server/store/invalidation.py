"""Cache coherence across instances: every instance hears every delete.

Complete media never changes, so the only thing that can make an instance's cached
metadata wrong is a delete, possibly made on another instance or by a cascade from
``messages``. A trigger (migrations/0008_instances.sql) sends ``NOTIFY media_deleted``
with the id at commit; each instance LISTENs on a dedicated connection (a pooled one
would be returned to the pool and stop listening) and drops the id from its cache.

While the connection is down, notifications are lost, so the store bypasses its cache
until LISTEN is back; then it starts from an empty cache.
"""
from __future__ import annotations

import asyncio
import logging

import asyncpg

from server.store.media import MediaStore
from server.store.sqlfiles import Q

log = logging.getLogger(__name__)

CHANNEL = "media_deleted"       # the trigger's pg_notify channel
PING_EVERY_SECONDS = 10.0       # a silent dead socket is only noticed when used
RETRY_MAX_SECONDS = 10.0
APPLICATION_NAME = "media-store deletion feed"   # how DBAs spot it in pg_stat_activity


async def follow_deletions(store: MediaStore, dsn: str) -> None:
    """Run until cancelled: keep ``store``'s cache coherent with deletes anywhere."""
    delay = 0.5
    while True:
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(
                dsn, timeout=10, server_settings={"application_name": APPLICATION_NAME})
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, payload:
                                    _forget(store, payload))
            store.trust_cache(True)
            delay = 0.5
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), PING_EVERY_SECONDS)
                except asyncio.TimeoutError:
                    await asyncio.wait_for(Q.ping.fetchval(conn), PING_EVERY_SECONDS)
            log.warning("lost the deletion feed; metadata cache bypassed until it is back")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("deletion feed unavailable (%s); metadata cache bypassed",
                        e.__class__.__name__)
        finally:
            store.trust_cache(False)
            if conn is not None:
                conn.terminate()
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_SECONDS)


def _forget(store: MediaStore, payload: str) -> None:
    try:
        store.forget(int(payload))
    except ValueError:
        log.warning("ignoring a malformed %s notification", CHANNEL)
