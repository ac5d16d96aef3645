"""The optional hash partitioning of content_chunks (docs/scaling.md): applied to a
database with media in it, nothing is lost, the service works unchanged, each chunk
read touches one partition, and it rolls back."""
from __future__ import annotations

import hashlib

from server.app import create_app
from server.cli.migrate import PARTITIONING_DIR, apply_migrations, rollback_migrations
from server.store.media import STORE
from tests.dbutil import bearer, fetchval
from tests.media import jpeg_bytes
from tests.procs import run_cli


async def _upload(client, message_id: int, data: bytes) -> dict:
    resp = await client.post(
        f"/api/media/upload-production?message_id={message_id}&filename=f.jpg",
        data=data, headers={"Content-Type": "image/jpeg"})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_partitioning_keeps_every_byte_and_the_service_works(db_dsn, settings,
                                                                   aiohttp_client, admin_key):
    client = await aiohttp_client(create_app(settings, db_dsn, run_janitor=False),
                                  headers=bearer(admin_key))
    message_id = await client.app[STORE].create_message()
    before = [(jpeg_bytes(30_000 + i, seed=i)) for i in range(5)]
    metas = [await _upload(client, message_id, d) for d in before]
    chunks = await fetchval(db_dsn, "SELECT count(*) FROM content_chunks")
    await client.close()

    res = run_cli(["partition-chunks"], {"DATABASE_URL": db_dsn})
    assert res.returncode == 0, res.stderr
    assert "0001_partition_media_chunks" in res.stdout
    assert await fetchval(db_dsn, "SELECT relkind::text FROM pg_class WHERE relname = "
                                  "'content_chunks'") == "p"
    assert await fetchval(db_dsn, "SELECT count(*) FROM pg_inherits WHERE inhparent = "
                                  "'content_chunks'::regclass") == 16
    assert await fetchval(db_dsn, "SELECT count(*) FROM content_chunks") == chunks
    assert apply_migrations(db_dsn, folder=PARTITIONING_DIR) == []   # once only

    # Each chunk read touches one partition (the plan names a single one).
    content = await fetchval(db_dsn, "SELECT content_id FROM media_files WHERE id = "
                                     f"{int(metas[0]['id'])}")
    plan = await fetchval(db_dsn, "EXPLAIN (FORMAT TEXT) SELECT seq, data FROM content_chunks "
                                  f"WHERE content_id = {int(content)} "
                                  "AND seq BETWEEN 0 AND 3")
    assert "content_chunks_p" in plan and "Append" not in plan

    client = await aiohttp_client(create_app(settings, db_dsn, run_janitor=False),
                                  headers=bearer(admin_key))
    for data, meta in zip(before, metas):
        resp = await client.get(meta["url"])
        assert await resp.read() == data
    new = jpeg_bytes(40_000, seed=9)
    meta = await _upload(client, message_id, new)
    got = await (await client.get(meta["url"], headers={"Range": "bytes=100-30099"})).read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(new[100:30100]).digest()
    assert (await client.delete(f"/api/media/{meta['id']}")).status == 204
    await client.app[STORE].reclaim_orphaned_contents(0)
    assert await fetchval(db_dsn, "SELECT count(*) FROM content_chunks") == chunks
    await client.close()

    assert rollback_migrations(db_dsn, folder=PARTITIONING_DIR) == \
        ["0001_partition_media_chunks"]
    assert await fetchval(db_dsn, "SELECT relkind::text FROM pg_class WHERE relname = "
                                  "'content_chunks'") == "r"
    assert await fetchval(db_dsn, "SELECT count(*) FROM content_chunks") == chunks
    # The cascade from media_contents still works after the way back.
    await fetchval(db_dsn, "DELETE FROM media_files")
    await fetchval(db_dsn, "DELETE FROM media_contents")
    assert await fetchval(db_dsn, "SELECT count(*) FROM content_chunks") == 0
