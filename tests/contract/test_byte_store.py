"""The store's contract (server/store/interface.py), the same cases run against every
implementation of its Protocols. Today that is the PostgreSQL one; another (a Citus
cluster, an object store behind the same Protocols) plugs in by adding a factory to
IMPLEMENTATIONS: an async context manager that yields a ready ByteStore and a message id
to attach media to."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os

import pytest

from server.errors import MediaNotFound
from server.store.interface import ByteStore, ContentUpload
from server.store.media import MediaStore, StorageCorrupt
from server.store.pool import create_pool

CHUNK = 3 * 1024


@contextlib.asynccontextmanager
async def postgresql(db_dsn, settings):
    pool = await create_pool(db_dsn, settings)
    try:
        store = MediaStore(pool, chunk_size=CHUNK)
        yield store, await store.create_message()
    finally:
        await pool.close()


IMPLEMENTATIONS = {"postgresql": postgresql}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
async def subject(request, db_dsn, settings):
    async with IMPLEMENTATIONS[request.param](db_dsn, settings) as (store, message_id):
        assert isinstance(store, ByteStore)
        yield store, message_id


async def put(store, message_id, data: bytes, piece: int = 1000):
    up = await store.begin_upload(file_name=f"{os.urandom(8).hex()}.bin",
                                  original_name="x.bin", mime_type="application/pdf",
                                  media_type="document")
    assert isinstance(up, ContentUpload)
    for i in range(0, len(data), piece):
        await up.write(data[i:i + piece])
    return await up.finish(message_id)


async def whole(store, rec) -> bytes:
    return b"".join([p async for p in store.read(rec, 0, rec.file_size - 1)])


async def test_round_trip_and_ranges(subject):
    store, message_id = subject
    data = os.urandom(4 * CHUNK + 11)
    rec = await put(store, message_id, data, piece=777)
    assert rec.sha256 == hashlib.sha256(data).digest() and rec.file_size == len(data)
    assert await whole(store, await store.stat(rec.id)) == data
    for a, b in ((0, 0), (CHUNK - 1, CHUNK), (5, 3 * CHUNK + 2), (len(data) - 1,) * 2):
        assert b"".join([p async for p in store.read(rec, a, b)]) == data[a:b + 1]


async def test_same_bytes_one_content(subject):
    store, message_id = subject
    data = os.urandom(2 * CHUNK + 1)
    a, b = await asyncio.gather(put(store, message_id, data), put(store, message_id, data))
    assert a.id != b.id and a.content_id == b.content_id
    figures, _ = await store.storage_figures()
    assert figures["contents"] == 1
    assert figures["logical_bytes"] == 2 * len(data) and figures["stored_bytes"] == len(data)


async def test_an_upload_is_invisible_until_finished_and_abort_leaves_nothing(subject):
    store, message_id = subject
    up = await store.begin_upload(file_name="u.bin", original_name="u.bin",
                                  mime_type="application/pdf", media_type="document")
    await up.write(os.urandom(3 * CHUNK))
    await up.flush()
    with pytest.raises(MediaNotFound):
        await store.stat(up.media_id)
    await up.abort()
    await up.abort()
    figures, _ = await store.storage_figures()
    assert figures["contents"] == 0
    assert await store.broken_invariants() == []


async def test_delete_keeps_what_another_shows_and_reclaim_waits_for_the_grace(subject):
    store, message_id = subject
    data = os.urandom(CHUNK + 5)
    a, b = await put(store, message_id, data), await put(store, message_id, data)
    await store.delete(a.id)
    with pytest.raises(MediaNotFound):
        await store.delete(a.id)
    assert await store.reclaim_orphaned_contents(0) == (0, 0)
    assert await whole(store, b) == data
    await store.delete(b.id)
    with pytest.raises(StorageCorrupt):               # a deleted media is not served ...
        await whole(store, b)
    assert await store.content_extent(b.content_id) == (2, 1)   # ... its content waits
    assert await store.reclaim_orphaned_contents(3600) == (0, 0)
    assert await store.reclaim_orphaned_contents(0) == (1, len(data))
    assert await store.content_extent(b.content_id) == (0, -1)


async def test_variants_are_contents_too(subject):
    store, message_id = subject
    preview = os.urandom(500)
    ids = []
    for _ in range(2):
        up = await store.begin_upload(file_name=f"{os.urandom(4).hex()}.jpg",
                                      original_name="p.jpg", mime_type="image/jpeg",
                                      media_type="image")
        await up.write(os.urandom(100))

        async def pieces():
            yield preview
        await store.store_variant(up.media_id, name="preview", mime_type="image/jpeg",
                                  dimensions=None, pieces=pieces())
        ids.append((await up.finish(message_id)).id)
    figures, _ = await store.storage_figures()
    assert figures["contents"] == 3                  # two media, one shared preview
    assert await store.broken_invariants() == []


async def test_whole_content_reads(subject):
    store, message_id = subject
    data = os.urandom(3 * CHUNK)
    rec = await put(store, message_id, data)
    assert await store.content_extent(rec.content_id) == (3, 2)
    rows = await store.content_chunks(rec.content_id, 0, 2)
    assert [s for s, _ in rows] == [0, 1, 2]
    import base64
    assert base64.b64decode("".join(t for _, t in rows)) == data
