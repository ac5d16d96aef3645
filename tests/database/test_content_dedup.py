"""Content-addressed storage: the same bytes stored once, whatever the number of media
that show them; deleting a media never takes content another one shows; content no row
shows is reclaimed after the grace period, without ever losing one an upload is
pointing at (many connections, hundreds of rounds)."""
from __future__ import annotations

import asyncio
import hashlib
import os
import random

from server.store.media import MediaStore
from server.store.sqlfiles import Q

CHUNK = 3 * 1024  # the settings fixture's chunk size
INVARIANTS = ("broken_complete_without_chunks", "broken_chunk_gaps",
              "broken_orphaned_chunks", "broken_rows_missing_content")


async def put(store: MediaStore, message_id: int, data: bytes, piece: int = 2000):
    up = await store.begin_upload(file_name=f"{os.urandom(8).hex()}.bin",
                                  original_name="x.bin", mime_type="application/pdf",
                                  media_type="document")
    for i in range(0, len(data), piece):
        await up.write(data[i:i + piece])
    return await up.finish(message_id)


async def read(store: MediaStore, media_id: int) -> bytes:
    rec = await store.stat(media_id)
    return b"".join([p async for p in store.read(rec, 0, rec.file_size - 1)])


async def one(pool, sql: str, *args):
    async with pool.acquire() as conn:
        return await conn.fetchval(sql, *args)


async def healthy(pool) -> None:
    async with pool.acquire() as conn:
        for name in INVARIANTS:
            assert await getattr(Q, name).fetch(conn) == [], name


async def test_the_same_bytes_are_stored_once(store, pool, message_id):
    data = os.urandom(3 * CHUNK + 7)
    a = await put(store, message_id, data)
    b = await put(store, message_id, data, piece=777)
    c = await put(store, message_id, os.urandom(100))
    assert a.id != b.id and a.content_id == b.content_id != c.content_id
    assert a.sha256 == b.sha256 == hashlib.sha256(data).digest()
    assert await read(store, a.id) == await read(store, b.id) == data
    assert await one(pool, "SELECT count(*) FROM media_contents") == 2
    assert await one(pool, "SELECT count(*) FROM content_chunks") == 4 + 1
    # Deleting one copy leaves the content to the other; deleting both orphans it.
    await store.delete(a.id)
    assert await store.reclaim_orphaned_contents(0) == (0, 0)
    assert await read(store, b.id) == data
    await store.delete(b.id)
    assert await store.reclaim_orphaned_contents(3600) == (0, 0)   # within the grace
    assert await store.reclaim_orphaned_contents(0) == (1, len(data))
    assert await one(pool, "SELECT count(*) FROM content_chunks") == 1
    # Uploaded again once reclaimed: stored anew.
    d = await put(store, message_id, data)
    assert await read(store, d.id) == data
    await healthy(pool)


async def test_two_identical_uploads_at_once_store_one_copy(store, pool, message_id):
    data = os.urandom(5 * CHUNK)
    ups = []
    for _ in range(4):
        up = await store.begin_upload(file_name=f"{os.urandom(8).hex()}.bin",
                                      original_name="x.bin", mime_type="application/pdf",
                                      media_type="document")
        await up.write(data)
        await up.flush()
        ups.append(up)
    # Every copy is written; they finish together.
    assert await one(pool, "SELECT count(*) FROM content_chunks") == 4 * 5
    recs = await asyncio.gather(*(up.finish(message_id) for up in ups))
    assert len({r.id for r in recs}) == 4 and len({r.content_id for r in recs}) == 1
    assert await one(pool, "SELECT count(*) FROM media_contents") == 1
    assert await one(pool, "SELECT count(*) FROM content_chunks") == 5
    for r in recs:
        assert await read(store, r.id) == data
    await healthy(pool)


async def test_aborted_upload_leaves_no_content(store, pool, message_id):
    up = await store.begin_upload(file_name="x.bin", original_name="x.bin",
                                  mime_type="application/pdf", media_type="document")
    await up.write(os.urandom(2 * CHUNK))
    await up.flush()
    assert await one(pool, "SELECT count(*) FROM content_chunks") == 2
    await up.abort()
    assert await one(pool, "SELECT count(*) FROM media_contents") == 0
    assert await one(pool, "SELECT count(*) FROM content_chunks") == 0


async def test_reclaim_racing_uploads_and_deletes_never_loses_content(pool, settings,
                                                                     message_id):
    # A pool of many connections; every round, uploads of a few payloads (so the same
    # content is claimed, orphaned and reclaimed over and over), deletes of media, and
    # a reclaim with no grace at all run at once.
    store = MediaStore(pool, chunk_size=settings.store.chunk_bytes)
    rng = random.Random(24)
    payloads = [os.urandom(n) for n in (10, CHUNK, 2 * CHUNK + 1)]
    alive: dict[int, bytes] = {}

    async def upload(data: bytes) -> None:
        rec = await put(store, message_id, data)
        alive[rec.id] = data

    async def delete(media_id: int) -> None:
        alive.pop(media_id, None)
        await store.delete(media_id)

    for _ in range(300):
        work = [upload(rng.choice(payloads)) for _ in range(rng.randint(1, 3))]
        if alive:
            gone = rng.sample(sorted(alive), k=min(len(alive), rng.randint(0, 3)))
            work += [delete(m) for m in gone]
        work.append(store.reclaim_orphaned_contents(0))
        rng.shuffle(work)
        await asyncio.gather(*work)
    # Every media left reads back whole, with its sha256.
    assert alive
    for media_id, data in alive.items():
        rec = await store.stat(media_id)
        assert rec.sha256 == hashlib.sha256(data).digest()
        assert await read(store, media_id) == data
    # At most one stored copy per payload, and after the grace nothing orphaned.
    await store.reclaim_orphaned_contents(0)
    async with pool.acquire() as conn:
        assert await Q.unreferenced_contents.fetch(conn) == []
        assert await conn.fetchval("SELECT count(*) FROM media_contents") == len(
            {hashlib.sha256(d).digest() for d in alive.values()})
    await healthy(pool)


async def test_a_variant_of_a_complete_media_is_a_shared_content(store, pool, message_id):
    """Thumbnails are made for complete media: through the same writer, shared when
    identical; a make that died before its row leaves a 'writing' content that the
    reclaim takes (once past the grace) and that blocks no later make."""
    a = await put(store, message_id, os.urandom(100))
    b = await put(store, message_id, os.urandom(100))
    thumb = os.urandom(2 * CHUNK + 1)

    async def pieces():
        yield thumb[:CHUNK + 5]
        yield thumb[CHUNK + 5:]

    for media in (a, b):
        await store.store_variant(media.id, name="thumb_96x96_crop", mime_type="image/jpeg",
                                  dimensions=None, pieces=pieces())
    assert await one(pool, "SELECT count(DISTINCT content_id) FROM media_variants") == 1
    assert await one(pool, "SELECT count(*) FROM media_contents WHERE state = 'writing'") == 0

    async def dying():
        yield thumb[:CHUNK + 5]
        raise asyncio.CancelledError   # the process making it went away mid-way

    # A make cut off mid-way: its abort could not run (the process died), as here,
    # where the 'writing' content it began is left as a crash leaves it.
    async with pool.acquire() as conn:
        left = await conn.fetchval(
            "INSERT INTO media_contents (chunk_size, writer_media_id) VALUES ($1, $2)"
            " RETURNING id", CHUNK, a.id)
        await conn.execute("INSERT INTO content_chunks VALUES ($1, 0, 'AAAA')", left)
    try:
        await store.store_variant(a.id, name="thumb_32x32_crop", mime_type="image/jpeg",
                                  dimensions=None, pieces=dying())
    except asyncio.CancelledError:
        pass
    # Made again afterwards: nothing left over stands in its way.
    await store.store_variant(a.id, name="thumb_32x32_crop", mime_type="image/jpeg",
                              dimensions=None, pieces=pieces())
    assert await store.reclaim_orphaned_contents(3600) == (0, 0)   # within the grace
    assert (await store.reclaim_orphaned_contents(0))[0] == 1      # the dead make's
    assert await one(pool, "SELECT count(*) FROM media_contents WHERE id = $1", left) == 0
    assert await one(pool, "SELECT count(*) FROM media_contents WHERE state = 'writing'") == 0
    assert await read(store, a.id) and await read(store, b.id)
    await healthy(pool)
