"""Many instances on one database: a delete is heard everywhere at once, and the uploads
of an instance that died are reclaimed by the others within seconds."""
from __future__ import annotations

import asyncio
import hashlib
import time
import uuid

import pytest

from server.store.invalidation import APPLICATION_NAME
from server.store.media import STORE, MediaStore
from tests.dbutil import admin, create_api_key, fetchval, new_message
from tests.media import jpeg_bytes
from tests.procs import Processes
from tests.process.test_process import BigFile, MIB, _poll, _post_sync, _stalled_upload


async def _until(predicate, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _trusted(client) -> None:
    store = client.app[STORE]

    async def ok():
        return store._stat_trusted
    await _until(ok, 10, "the deletion feed to connect")


@pytest.fixture
async def two(server_for):
    """Two instances of the server on one database, both caching metadata for 30 s.
    A writes with an admin key; B reads with the signed URLs A hands out, no key."""
    a = await server_for(store__metadata_cache_seconds=30)
    b = await server_for(store__metadata_cache_seconds=30, key=None)
    await _trusted(a)
    await _trusted(b)
    return a, b


async def _upload(client, message_id: int, data: bytes) -> dict:
    resp = await client.post(
        f"/api/media/upload-production?message_id={message_id}&filename=p.jpg",
        data=data, headers={"Content-Type": "image/jpeg"})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def _cached_on(client, media: dict) -> str:
    resp = await client.head(media["url"])
    assert resp.status == 200
    assert media["id"] in client.app[STORE]._stats   # B now answers from memory
    return resp.headers["ETag"]


async def _gone_on(client, media: dict, etag: str) -> None:
    async def gone():
        head = await client.head(media["url"])
        cond = await client.get(media["url"], headers={"If-None-Match": etag})
        return head.status == 404 and cond.status == 404
    await _until(gone, 2.0, "the other instance to see the delete")


async def test_a_delete_on_one_instance_is_seen_at_once_on_the_other(two):
    a, b = two
    message_id = await a.app[STORE].create_message()
    media = await _upload(a, message_id, jpeg_bytes(20_000))
    etag = await _cached_on(b, media)
    started = time.monotonic()
    assert (await a.delete(f"/api/media/{media['id']}")).status == 204
    await _gone_on(b, media, etag)
    assert time.monotonic() - started < 2.0
    assert (await b.get(media["url"])).status == 404


async def test_a_cascade_from_messages_is_heard_too(two, db_dsn):
    a, b = two
    message_id = await a.app[STORE].create_message()
    media = await _upload(a, message_id, jpeg_bytes(9_000))
    etag = await _cached_on(b, media)
    # The chat product deletes its message; the media goes by the foreign key.
    await admin(db_dsn, f"DELETE FROM messages WHERE id = {int(message_id)}")
    await _gone_on(b, media, etag)


async def test_the_feed_reconnects_and_the_cache_is_bypassed_meanwhile(two, db_dsn):
    a, b = two
    store = b.app[STORE]
    message_id = await a.app[STORE].create_message()
    media = await _upload(a, message_id, jpeg_bytes(9_000))
    await _cached_on(b, media)
    # Cut every deletion feed connection from the server side.
    await admin(db_dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        f"WHERE application_name = '{APPLICATION_NAME}'")

    async def untrusted():
        return not store._stat_trusted
    await _until(untrusted, 15, "the lost feed to be noticed")
    assert media["id"] not in store._stats     # what it held may be stale: dropped
    await _trusted(b)                          # back by itself
    etag = await _cached_on(b, media)
    assert (await a.delete(f"/api/media/{media['id']}")).status == 204
    await _gone_on(b, media, etag)


# -- uploads of dead instances ------------------------------------------------------

async def _half_upload(pool, instance_id, message_id) -> int:
    store = MediaStore(pool, chunk_size=3 * 1024, instance_id=instance_id)
    up = await store.begin_upload(file_name=f"{uuid.uuid4().hex}.jpg", original_name="x",
                                  mime_type="image/jpeg", media_type="image")
    await up.write(jpeg_bytes(10_000))
    await up.flush()
    return up.media_id


async def test_dead_instances_uploads_are_reclaimed_live_ones_kept(pool, db_dsn, message_id):
    alive, dead = uuid.uuid4(), uuid.uuid4()
    live_store = MediaStore(pool, chunk_size=3 * 1024, instance_id=alive)
    await live_store.beat("host-a", 1)
    mine = await _half_upload(pool, alive, message_id)
    theirs = await _half_upload(pool, dead, message_id)        # never beat: dead
    ownerless = await _half_upload(pool, None, message_id)     # a resumable upload
    # Everything untouched for a while (test-only SQL to age the rows).
    await admin(db_dsn, "UPDATE media_files SET updated_at = now() - interval '10 minutes'")
    other = MediaStore(pool, chunk_size=3 * 1024, instance_id=uuid.uuid4())
    assert await other.reclaim_dead_instance_uploads(60) == 1
    left = await fetchval(db_dsn, "SELECT array_agg(id ORDER BY id) FROM media_files")
    assert left == sorted([mine, ownerless]) and theirs not in left
    assert await fetchval(db_dsn, "SELECT count(*) FROM content_chunks k JOIN media_contents c "
                                  "ON c.id = k.content_id "
                                  f"WHERE c.writer_media_id = {int(theirs)}") == 0


async def test_a_recent_write_protects_an_upload_whose_instance_is_late(pool, db_dsn,
                                                                        message_id):
    late = uuid.uuid4()
    await _half_upload(pool, late, message_id)   # written just now, no beat at all
    other = MediaStore(pool, chunk_size=3 * 1024, instance_id=uuid.uuid4())
    assert await other.reclaim_dead_instance_uploads(60) == 0


@pytest.mark.slow
async def test_kill_9_mid_upload_another_instance_reclaims_it_completed_files_intact(
        db_dsn):
    procs = Processes()
    fast = {"DATABASE_URL": db_dsn, "MEDIA_HEARTBEAT_SECONDS": "0.5",
            "MEDIA_INSTANCE_DEAD_SECONDS": "2"}
    try:
        victim = procs.start(fast)
        message_id = await new_message(db_dsn)
        key = await create_api_key(db_dsn, "write")
        done = []
        for i in range(3):
            data = jpeg_bytes(200_000 + i, seed=i)
            status, body = await asyncio.to_thread(_post_sync, victim, message_id, data,
                                                   "image/jpeg", f"ok{i}.jpg", key)
            assert status == 201
            done.append((body["url"], data))
        sock = _stalled_upload(victim, message_id, 100 * MIB, BigFile(MIB).slice(0, MIB), key)
        try:
            assert await _poll(db_dsn, "SELECT count(*) FROM media_files "
                                       "WHERE upload_state = 'uploading'", lambda c: c == 1)
            victim.proc.kill()                       # SIGKILL: no abort, no goodbye
            victim.proc.wait(10)
        finally:
            sock.close()
        assert await fetchval(db_dsn, "SELECT count(*) FROM media_files "
                                      "WHERE upload_state = 'uploading'") == 1
        survivor = procs.start(fast)
        started = time.monotonic()
        assert await _poll(db_dsn, "SELECT count(*) FROM media_files "
                                   "WHERE upload_state = 'uploading'",
                           lambda c: c == 0, timeout=20) == 0
        assert time.monotonic() - started < 20
        for url, data in done:
            status, body = survivor.get(url)   # signed by the victim, verified here
            assert status == 200 and hashlib.sha256(body).digest() == \
                hashlib.sha256(data).digest()
        assert await fetchval(db_dsn, "SELECT count(*) FROM content_chunks c WHERE NOT EXISTS "
                                      "(SELECT 1 FROM media_files f "
                                      " WHERE f.content_id = c.content_id) AND NOT EXISTS "
                                      "(SELECT 1 FROM media_variants v "
                                      " WHERE v.content_id = c.content_id)") == 0
    finally:
        procs.cleanup()
