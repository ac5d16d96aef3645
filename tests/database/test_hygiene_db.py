"""Storage hygiene's bookkeeping in PostgreSQL: usage follows the media whichever way
they go (a cascade from messages too), reservations are released when an upload dies
with its instance, and the guard's finishing step refuses quarantined content inside
the transaction that would make it visible."""
from __future__ import annotations

import os

import pytest

from server.errors import QuarantinedContent, QuotaExceeded
from server.hygiene.guard import IngestGuard
from server.hygiene.quarantine import quarantine
from server.hygiene.quotas import Reservation, release_stale, set_quota
from server.security.keys import create_key
from tests.dbutil import admin
from tests.media import jpeg_bytes


async def key_id(store, name: str, **limits) -> int:
    async with store.connection() as conn:
        await create_key(conn, name, "write", limits=limits)
        return await conn.fetchval("SELECT id FROM api_keys WHERE name = $1", name)


async def usage(store, kid: int) -> tuple[int, int, int]:
    async with store.connection() as conn:   # test-only SQL: the usage row
        return tuple(await conn.fetchrow(
            "SELECT bytes, files, reserved FROM key_usage WHERE key_id = $1", kid))


async def put(store, message_id: int, data: bytes, guard: IngestGuard):
    await guard.start()
    up = await store.begin_upload(file_name=f"{os.urandom(8).hex()}.jpg",
                                  original_name="x.jpg", mime_type="image/jpeg",
                                  media_type="image")
    up.guard = guard
    try:
        for i in range(0, len(data), 4096):
            await guard.feed(data[i:i + 4096])
            await up.write(data[i:i + 4096])
        await guard.end()
        return await up.finish(message_id)
    except BaseException:
        await up.abort()
        raise


async def test_a_cascade_from_messages_gives_usage_back(store, message_id, db_dsn):
    kid = await key_id(store, "k")
    data = jpeg_bytes(10_000)
    await put(store, message_id, data, IngestGuard(store, key_id=kid, batch=3072))
    await put(store, message_id, data, IngestGuard(store, key_id=kid, batch=3072))
    assert await usage(store, kid) == (2 * len(data), 2, 0)
    await admin(db_dsn, f"DELETE FROM messages WHERE id = {int(message_id)}")
    assert await usage(store, kid) == (0, 0, 0)


async def test_stale_reservations_are_released(store):
    kid = await key_id(store, "crashed", quota_bytes=10_000)
    r = await Reservation.begin(store, kid)
    await r.add(8_000)   # then its instance died: nobody releases it
    with pytest.raises(QuotaExceeded):
        await (await Reservation.begin(store, kid)).add(4_000)
    assert await release_stale(store, 3600) == 0          # not stale yet
    assert await release_stale(store, 0) >= 1
    assert await usage(store, kid) == (0, 0, 0)
    await (await Reservation.begin(store, kid)).add(4_000)


async def test_a_quota_changed_mid_upload_applies_to_its_next_batch(store, message_id):
    kid = await key_id(store, "changing", quota_bytes=100_000)
    r = await Reservation.begin(store, kid)
    await r.add(30_000)
    async with store.connection() as conn:
        await set_quota(conn, "changing", quota_bytes=40_000)
    with pytest.raises(QuotaExceeded):
        await r.add(30_000)
    await r.release()
    assert await usage(store, kid) == (0, 0, 0)


async def test_quarantined_content_is_refused_in_the_finishing_transaction(store, message_id):
    kid = await key_id(store, "q")
    data = jpeg_bytes(9_000)
    rec = await put(store, message_id, data, IngestGuard(store, key_id=kid, batch=3072))
    async with store.connection() as conn:
        assert await quarantine(conn, rec.sha256, reason="test", who="t", media_id=rec.id)
    with pytest.raises(QuarantinedContent):
        await put(store, message_id, data, IngestGuard(store, key_id=kid, batch=3072))
    assert await usage(store, kid) == (len(data), 1, 0)   # the refused one gave all back
    async with store.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM media_files") == 1
