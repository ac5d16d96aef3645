"""Cache misses gathered into one query while the pool is busy (server/store/batching.py),
against a real PostgreSQL: the bytes, the number of round trips, a missing chunk, a
reader that leaves, a pool that never frees."""
from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from server.errors import ServiceUnavailable
from server.observability.metrics import Metrics
from server.store.cache import ChunkCache
from server.store.media import MediaStore, StorageCorrupt
from tests.dbutil import admin
from tests.media import jpeg_bytes


async def _files(store: MediaStore, message_id: int, n: int) -> list[tuple[object, bytes]]:
    out = []
    for i in range(n):
        data = jpeg_bytes(1_000 + i)            # one chunk of 3 KiB each
        up = await store.begin_upload(file_name=f"b{i}.jpg", original_name=f"b{i}.jpg",
                                      mime_type="image/jpeg", media_type="image")
        await up.write(data)
        out.append((await up.finish(message_id), data))
    return out


@contextlib.asynccontextmanager
async def _busy(store: MediaStore, free: int = 1):
    """Hold all of the pool's connections but ``free``: no room for a read of its own."""
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(store.pool.get_max_size() - free):
            await stack.enter_async_context(store.connection())
        assert not store.pool_has_room()
        yield


async def _read(store: MediaStore, rec) -> bytes:
    return b"".join([p async for p in store.read(rec, 0, rec.file_size - 1)])


@pytest.fixture
def cached_store(pool):
    return MediaStore(pool, chunk_size=3 * 1024, chunk_cache=ChunkCache(1 << 20))


async def test_misses_behind_a_busy_pool_share_one_query_and_each_chunk_is_read_once(
        cached_store, message_id):
    store = cached_store
    files = await _files(store, message_id, 20)
    wanted = files + [files[0]] * 5             # five more readers of one new photo
    async with _busy(store):
        got = await asyncio.gather(*(_read(store, rec) for rec, _ in wanted))
    assert got == [data for _, data in wanted]
    # 20 distinct chunks, in batches of at most 16: two round trips instead of 25.
    assert store.batched_reads.chunks == 20
    assert store.batched_reads.queries == 2
    # Operators see it in /metrics.
    metrics = Metrics()
    metrics.sample_store(store)
    text = metrics.render().decode()
    assert 'media_batched_chunk_reads_total{counted="queries"} 2.0' in text
    assert 'media_batched_chunk_reads_total{counted="chunks"} 20.0' in text


async def test_with_room_in_the_pool_a_miss_reads_on_its_own(cached_store, message_id):
    store = cached_store
    [(rec, data)] = await _files(store, message_id, 1)
    assert store.pool_has_room()
    assert await _read(store, rec) == data
    assert store.batched_reads.queries == 0


async def test_a_missing_chunk_fails_its_own_read_only(cached_store, message_id, db_dsn):
    store = cached_store
    (gone, _), (kept, data) = await _files(store, message_id, 2)
    # Test-only SQL: the chunks taken away behind the store's back.
    await admin(db_dsn, f"DELETE FROM content_chunks WHERE content_id = {int(gone.content_id)}")
    async with _busy(store):
        results = await asyncio.gather(_read(store, gone), _read(store, kept),
                                       return_exceptions=True)
    assert isinstance(results[0], StorageCorrupt)
    assert results[1] == data
    assert store.batched_reads.queries == 1


async def test_a_reader_that_leaves_does_not_cancel_the_read_for_the_others(
        cached_store, message_id):
    store = cached_store
    [(rec, data)] = await _files(store, message_id, 1)
    async with _busy(store, free=0):            # the batch has to wait for a connection
        leaving = asyncio.ensure_future(_read(store, rec))
        staying = asyncio.ensure_future(_read(store, rec))
        await asyncio.sleep(0.05)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
    assert await asyncio.wait_for(staying, 10) == data
    assert store.batched_reads.queries == 1


async def test_a_pool_that_never_frees_is_a_clean_503_and_the_next_read_works(
        pool, message_id):
    store = MediaStore(pool, chunk_size=3 * 1024, chunk_cache=ChunkCache(1 << 20),
                       acquire_timeout=0.3)
    [(rec, data)] = await _files(store, message_id, 1)
    async with _busy(store, free=0):
        t = time.monotonic()
        results = await asyncio.gather(_read(store, rec), _read(store, rec),
                                       return_exceptions=True)
        assert all(isinstance(r, ServiceUnavailable) for r in results), results
        assert time.monotonic() - t < 5
    assert await _read(store, rec) == data       # nothing of the failed batch is left
