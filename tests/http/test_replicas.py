"""DATABASE_READ_URL against a real streaming standby (pg_basebackup from a private
primary): reads of complete media go to the replica, media it has not replayed yet
comes from the primary (no 404 after an upload), a replica that goes down is skipped
and used again once it answers."""
from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from server.app import create_app
from server.cli.migrate import apply_migrations
from server.settings import Settings, replace_settings
from server.store.media import STORE
from tests.dbutil import bearer, create_api_key
from tests.media import BYTES_KEPT, jpeg_bytes
from tests.pgcluster import Cluster, machine_bindir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    bindir = machine_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql to build a "
                    "standby with")
    c = Cluster(bindir)
    try:
        primary = c.primary()
        apply_migrations(primary.dsn)
        # Every statement in the standby's log: the proof of what it answered.
        standby = c.standby_of(primary, "-c log_statement=all")
        yield primary, standby
    finally:
        c.close()


async def _q(dsn: str, sql: str):
    # Test-only SQL against the test's own servers.
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def _replica_reads(standby) -> int:
    """Chunk reads the standby has been asked for so far (from its statement log)."""
    return standby.log().count("FROM content_chunks")


async def _caught_up(primary, standby) -> None:
    lsn = await _q(primary.dsn, "SELECT pg_current_wal_lsn()::text")
    for _ in range(200):
        if await _q(standby.dsn, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the standby did not catch up")


async def test_reads_go_to_the_replica_and_fall_back_to_the_primary(cluster, aiohttp_client):
    # (The key is made on the primary: a key is always checked there, so a revoked
    # one stops at once even while replicas lag.)
    primary, standby = cluster
    settings = replace_settings(Settings(), db__url=primary.dsn, db__read_urls=(standby.dsn,),
                                store__chunk_bytes=3 * 1024, store__metadata_cache_seconds=0,
                                # the padded JPEG comes back as sent
                                store__cache_bytes=0, **BYTES_KEPT)
    key = await create_api_key(primary.dsn, "admin")
    client = await aiohttp_client(create_app(settings, primary.dsn, run_janitor=False),
                                  headers=bearer(key))
    store = client.app[STORE]
    message_id = await store.create_message()

    async def upload(data: bytes) -> dict:
        resp = await client.post(
            f"/api/media/upload-production?message_id={message_id}&filename=r.jpg",
            data=data, headers={"Content-Type": "image/jpeg"})
        assert resp.status == 201, await resp.text()
        return await resp.json()

    data = jpeg_bytes(40_000)
    media = await upload(data)
    await _caught_up(primary, standby)
    before = await _replica_reads(standby)
    resp = await client.get(media["url"])
    assert resp.status == 200 and await resp.read() == data
    assert await _replica_reads(standby) > before      # the bytes came from the replica

    # A replica that has not replayed an upload yet: the primary answers, no 404.
    await _q(standby.dsn, "SELECT pg_wal_replay_pause()")
    try:
        fresh = jpeg_bytes(20_000, seed=5)
        newer = await upload(fresh)
        assert (await client.get(f"/api/media/{newer['id']}")).status == 200
        got = await client.get(newer["url"])
        assert got.status == 200 and await got.read() == fresh
    finally:
        await _q(standby.dsn, "SELECT pg_wal_replay_resume()")

    # The replica goes down: reads carry on from the primary, promptly.
    standby.stop("immediate")
    try:
        for _ in range(3):
            started = time.monotonic()
            got = await client.get(media["url"])
            assert got.status == 200 and await got.read() == data
            assert time.monotonic() - started < 5
        assert store.replicas.healthy() == [False]
    finally:
        standby.start()
    # ... and is used again once it answers (probed in the background).
    for _ in range(100):
        if store.replicas.healthy() == [True]:
            break
        await asyncio.sleep(0.1)
    assert store.replicas.healthy() == [True]
    await _caught_up(primary, standby)
    before = await _replica_reads(standby)
    got = await client.get(media["url"])
    assert await got.read() == data
    assert await _replica_reads(standby) > before


async def test_variants_are_read_from_the_replica_too(cluster, aiohttp_client):
    import hashlib

    from tests.media import exif_photo
    primary, standby = cluster
    settings = replace_settings(Settings(), db__url=primary.dsn, db__read_urls=(standby.dsn,),
                                store__chunk_bytes=3 * 1024, store__metadata_cache_seconds=0,
                                store__cache_bytes=0)
    key = await create_api_key(primary.dsn, "admin")
    client = await aiohttp_client(create_app(settings, primary.dsn, run_janitor=False),
                                  headers=bearer(key))
    message_id = await client.app[STORE].create_message()
    resp = await client.post(
        f"/api/media/upload-production?message_id={message_id}&filename=p.jpg",
        data=exif_photo(900, 600), headers={"Content-Type": "image/jpeg"})
    assert resp.status == 201, await resp.text()
    preview = (await resp.json())["variants"]["preview"]
    await _caught_up(primary, standby)
    before = standby.log().count("FROM content_chunks")
    got = await client.get(preview["url"])
    data = await got.read()
    assert got.status == 200 and len(data) == preview["file_size"]
    assert got.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert standby.log().count("FROM content_chunks") > before
