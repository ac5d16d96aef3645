"""The media store against a real PostgreSQL: round trips, ranges, visibility, reclaim."""
import asyncio
import base64
import hashlib
import os
import random

import pytest

from server.errors import MediaNotFound, MessageNotFound, UploadExpired
from server.store.cache import ChunkCache
from server.store.media import WRITE_BATCH, MediaStore, StorageCorrupt
from tests.dbutil import admin
from tests.media import jpeg_bytes

CHUNK = 3 * 1024  # the settings fixture's chunk size


async def put(store: MediaStore, message_id: int, data: bytes, *, piece: int = 1000):
    up = await store.begin_upload(file_name=f"{os.urandom(8).hex()}.bin",
                                  original_name="x.bin", mime_type="application/pdf",
                                  media_type="document")
    for i in range(0, len(data), piece):
        await up.write(data[i:i + piece])
    return await up.finish(message_id)


async def get(store: MediaStore, rec, start=0, end=None) -> bytes:
    end = rec.file_size - 1 if end is None else end
    return b"".join([p async for p in store.read(rec, start, end)])


# The chunks of one media's content (by media id, $1).
OF_MEDIA = "content_chunks WHERE content_id = (SELECT content_id FROM media_files WHERE id = $1)"


async def chunk_rows(pool, media_id=None) -> int:
    async with pool.acquire() as conn:
        if media_id is None:
            return await conn.fetchval("SELECT count(*) FROM content_chunks")
        return await conn.fetchval("SELECT count(*) FROM " + OF_MEDIA,
                                   media_id)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 2])
async def test_round_trip_boundaries(store, pool, message_id, size):
    data = os.urandom(size)
    rec = await put(store, message_id, data, piece=777)
    assert rec.file_size == size
    assert rec.sha256 == hashlib.sha256(data).digest()
    assert rec.chunk_count == -(-size // CHUNK)
    assert await chunk_rows(pool, rec.id) == rec.chunk_count
    if size:
        assert await get(store, rec) == data
    # The original design's file_data, one SQL call away, is the whole file's base64.
    async with pool.acquire() as conn:
        b64 = await conn.fetchval("SELECT media_file_data($1)", rec.id)
    assert b64 == base64.b64encode(data).decode()


async def test_round_trip_tens_of_mib_with_default_chunk(pool, message_id):
    store = MediaStore(pool, chunk_size=261_120)
    data = random.Random(7).randbytes(24 * 1024 * 1024 + 5)
    rec = await put(store, message_id, data, piece=64 * 1024 + 1)
    assert rec.chunk_count == -(-len(data) // 261_120)
    assert await get(store, rec) == data
    # A range near the end touches only the last chunks.
    assert await get(store, rec, len(data) - 1000, len(data) - 1) == data[-1000:]


async def test_ranges_across_chunk_boundaries(store, message_id):
    data = os.urandom(10 * CHUNK + 17)
    rec = await put(store, message_id, data)
    edges = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 1, 7 * CHUNK, len(data) - 1]
    for a in edges:
        for b in edges:
            if a <= b:
                assert await get(store, rec, a, b) == data[a:b + 1], (a, b)


async def test_read_rejects_range_outside_file(store, message_id):
    rec = await put(store, message_id, b"abcdef")
    with pytest.raises(ValueError):
        await get(store, rec, 0, 6)


async def test_upload_invisible_until_finished(store, pool, message_id):
    up = await store.begin_upload(file_name="a.pdf", original_name="a.pdf",
                                  mime_type="application/pdf", media_type="document")
    await up.write(os.urandom(4 * CHUNK))
    await up.flush()
    with pytest.raises(MediaNotFound):
        await store.stat(up.media_id)
    assert (await store.list_page(message_id, 100, None))[0] == []
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT media_file_data($1)", up.media_id) is None
        # Progress is in the database, not in process memory: any instance can see it.
        row = await conn.fetchrow(
            "SELECT upload_state, file_size, chunk_count FROM media_files WHERE id=$1",
            up.media_id)
    assert dict(row) == {"upload_state": "uploading", "file_size": 4 * CHUNK,
                         "chunk_count": 4}
    rec = await up.finish(message_id)
    assert (await store.stat(rec.id)).file_size == 4 * CHUNK


async def test_abort_reclaims_everything(store, pool, message_id):
    up = await store.begin_upload(file_name="b.pdf", original_name="b.pdf",
                                  mime_type="application/pdf", media_type="document")
    await up.write(os.urandom(5 * CHUNK + 1))
    await up.flush()
    assert await chunk_rows(pool, up.media_id) == 5
    await up.abort()
    await up.abort()  # twice is harmless
    assert await chunk_rows(pool) == 0
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM media_files") == 0


async def progress(pool, media_id) -> tuple[int, int, list[int]]:
    """(file_size, chunk_count) of the progress row, and the stored chunks' seqs."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        row = await conn.fetchrow("SELECT file_size, chunk_count FROM media_files "
                                  "WHERE id = $1", media_id)
        seqs = [r["seq"] for r in await conn.fetch(
            "SELECT seq FROM " + OF_MEDIA + " ORDER BY seq", media_id)]
    return row["file_size"], row["chunk_count"], seqs


async def test_batched_writes_keep_progress_and_chunks_contiguous(store, pool, message_id):
    # Chunks that fill while a write is in flight go together in the next statement.
    # Whenever it is looked at, the progress row names the chunks stored, but for at
    # most one batch still being written beside another (two writes in flight), and
    # after flush exactly every full chunk, in order, with its bytes.
    up = await store.begin_upload(file_name="p.pdf", original_name="p.pdf",
                                  mime_type="application/pdf", media_type="document")
    data = os.urandom(40 * CHUNK + 5)
    rng = random.Random(3)
    pos = 0
    while pos < len(data):
        n = rng.choice([1, 700, CHUNK - 1, 3 * CHUNK + 2, 6 * CHUNK])
        await up.write(data[pos:pos + n])
        pos += n
        size, count, seqs = await progress(pool, up.media_id)
        assert size == count * CHUNK
        missing = sorted(set(range(count)) - set(seqs))
        assert len(missing) <= WRITE_BATCH, (missing, count)
        assert missing == list(range(missing[0], missing[0] + len(missing))) if missing else True
    await up.flush()
    assert await progress(pool, up.media_id) == (40 * CHUNK, 40, list(range(40)))
    async with pool.acquire() as conn:
        # Chunks written by one statement share its transaction id: batches formed.
        batches = await conn.fetchval("SELECT count(DISTINCT xmin::text) FROM "
                                      + OF_MEDIA, up.media_id)
    assert batches < 40
    rec = await up.finish(message_id)
    assert await get(store, rec) == data


async def test_abort_with_a_batch_in_flight_and_more_queued_leaves_nothing(store, pool):
    # A request cut mid-upload: one write in flight, chunks queued behind it. Nothing
    # may be left, and no queued batch may be written after the abort.
    up = await store.begin_upload(file_name="q.pdf", original_name="q.pdf",
                                  mime_type="application/pdf", media_type="document")
    for _ in range(6):
        await up.write(os.urandom(CHUNK))
    assert up._in_flight and not any(t.done() for t in up._in_flight) and up._queued
    await up.abort()
    await asyncio.sleep(0.3)
    assert await chunk_rows(pool) == 0
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM media_files") == 0


async def test_a_second_write_goes_in_flight_only_while_the_pool_has_room(
        store, pool, message_id):
    data = os.urandom((2 + 2 * WRITE_BATCH) * CHUNK)
    up = await store.begin_upload(file_name="w.pdf", original_name="w.pdf",
                                  mime_type="application/pdf", media_type="document")
    await up.write(data[:(1 + WRITE_BATCH) * CHUNK])   # one chunk, then a full batch
    assert len(up._in_flight) == 2 and up._queued == []
    await up.flush()
    # Hold all but two connections: taking one more would leave none free.
    gate = store._gate
    held = [asyncio.ensure_future(gate.acquire()) for _ in range(gate.limit - gate.in_use - 1)]
    await asyncio.gather(*held)
    try:
        await up.write(data[(1 + WRITE_BATCH) * CHUNK:])   # the same again
        assert len(up._in_flight) == 1
    finally:
        for _ in held:
            gate.release()
    rec = await up.finish(message_id)
    assert await get(store, rec) == data


async def test_abort_from_cancelled_task_still_reclaims(store, pool):
    up = await store.begin_upload(file_name="c.pdf", original_name="c.pdf",
                                  mime_type="application/pdf", media_type="document")
    await up.write(os.urandom(3 * CHUNK))

    async def cancelled_request():
        try:
            await asyncio.sleep(10)
        finally:
            await up.abort()

    task = asyncio.create_task(cancelled_request())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)  # the shielded delete finishes on its own
    assert await chunk_rows(pool) == 0


async def test_finish_with_unknown_message_is_message_not_found(store, pool):
    up = await store.begin_upload(file_name="d.pdf", original_name="d.pdf",
                                  mime_type="application/pdf", media_type="document")
    await up.write(b"%PDF-1.4 hello")
    with pytest.raises(MessageNotFound):
        await up.finish(999_999)


async def test_janitor_reclaims_only_stale_uploads(store, pool, message_id):
    stale = await store.begin_upload(file_name="s.pdf", original_name="s.pdf",
                                     mime_type="application/pdf", media_type="document")
    await stale.write(os.urandom(2 * CHUNK))
    fresh = await store.begin_upload(file_name="f.pdf", original_name="f.pdf",
                                     mime_type="application/pdf", media_type="document")
    await fresh.write(os.urandom(2 * CHUNK))
    await stale.flush()
    await fresh.flush()
    done = await put(store, message_id, os.urandom(2 * CHUNK))
    async with pool.acquire() as conn:
        # Age the first upload and the complete file: only the upload may go.
        await conn.execute("UPDATE media_files SET updated_at = now() - interval '2 hours' "
                           "WHERE id = ANY($1)", [stale.media_id, done.id])
    assert await store.reclaim_stale_uploads(3600) == 1
    assert await chunk_rows(pool, stale.media_id) == 0
    assert await chunk_rows(pool, fresh.media_id) == 2
    assert (await store.stat(done.id)).id == done.id
    # The reclaimed upload can no longer be completed.
    with pytest.raises(UploadExpired):
        await stale.finish(message_id)


async def test_delete_removes_chunks_and_message_delete_cascades(store, pool, message_id):
    a = await put(store, message_id, os.urandom(2 * CHUNK + 5))
    b = await put(store, message_id, os.urandom(CHUNK))
    await store.delete(a.id)
    with pytest.raises(MediaNotFound):
        await store.stat(a.id)
    with pytest.raises(MediaNotFound):
        await store.delete(a.id)
    assert await chunk_rows(pool, a.id) == 0
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM messages WHERE id=$1", message_id)
    with pytest.raises(MediaNotFound):
        await store.stat(b.id)
    # The contents no row shows any more wait for the grace period, then go.
    assert await chunk_rows(pool) == 4
    assert await store.reclaim_orphaned_contents(3600) == (0, 0)
    assert await store.reclaim_orphaned_contents(0) == (2, 3 * CHUNK + 5)
    assert await chunk_rows(pool) == 0


async def test_list_page_oldest_first(store, message_id):
    other = await store.create_message()
    ids = [(await put(store, message_id, os.urandom(10))).id for _ in range(3)]
    await put(store, other, os.urandom(10))
    assert [r.id for r in (await store.list_page(message_id, 100, None))[0]] == ids


async def test_concurrent_uploads_and_reads(store, message_id):
    blobs = [os.urandom(random.randint(1, 6 * CHUNK)) for _ in range(30)]
    recs = await asyncio.gather(*(put(store, message_id, b, piece=500) for b in blobs))
    back = await asyncio.gather(*(get(store, r) for r in recs))
    assert back == blobs


async def test_read_of_file_deleted_midway_raises(store, pool, message_id):
    from server.store.media import StorageCorrupt
    rec = await put(store, message_id, os.urandom(20 * CHUNK))
    stream = store.read(rec, 0, rec.file_size - 1)
    await anext(stream)
    await store.delete(rec.id)
    # Its content stays for the grace period, but a deleted media's bytes are not served.
    assert await store.content_extent(rec.content_id) == (20, 19)
    with pytest.raises(StorageCorrupt):
        async for _ in stream:
            pass


async def test_writing_to_a_reclaimed_upload_is_upload_expired(store, pool):
    up = await store.begin_upload(file_name="r.pdf", original_name="r.pdf",
                                  mime_type="application/pdf", media_type="document")
    await up.write(os.urandom(CHUNK))
    await up.flush()
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM media_files WHERE id=$1", up.media_id)
    with pytest.raises(UploadExpired):
        await up.write(os.urandom(2 * CHUNK))
        await up.flush()


async def test_metadata_cache_serves_repeats_and_forgets_deletes(pool, message_id):
    store = MediaStore(pool, chunk_size=CHUNK, stat_cache_seconds=60)
    rec = await put(store, message_id, os.urandom(2 * CHUNK))
    assert await store.stat_for_serving(rec.id) == rec
    # Removed behind the store's back (another instance): the cached metadata is still
    # answered; once its content is reclaimed (after the grace period) the bytes are
    # gone, so a read fails instead of serving stale data.
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM media_files WHERE id = $1", rec.id)
    assert await store.stat_for_serving(rec.id) == rec
    await store.reclaim_orphaned_contents(0)
    from server.store.media import StorageCorrupt
    with pytest.raises(StorageCorrupt):
        await get(store, rec)
    # A delete through this store forgets at once.
    other = await put(store, message_id, os.urandom(10))
    assert await store.stat_for_serving(other.id) == other
    await store.delete(other.id)
    with pytest.raises(MediaNotFound):
        await store.stat_for_serving(other.id)


async def test_metadata_cache_off_and_bounded(pool, message_id):
    off = MediaStore(pool, chunk_size=CHUNK, stat_cache_seconds=0)
    rec = await put(off, message_id, os.urandom(10))
    await off.stat_for_serving(rec.id)
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM media_files WHERE id = $1", rec.id)
    with pytest.raises(MediaNotFound):
        await off.stat_for_serving(rec.id)

    small = MediaStore(pool, chunk_size=CHUNK, stat_cache_seconds=60, stat_cache_size=3)
    recs = [await put(small, message_id, os.urandom(10)) for _ in range(5)]
    for r in recs:
        await small.stat_for_serving(r.id)
    assert list(small._stats) == [r.id for r in recs[-3:]]


async def test_metadata_cache_expires(pool, message_id):
    store = MediaStore(pool, chunk_size=CHUNK, stat_cache_seconds=0.2)
    rec = await put(store, message_id, os.urandom(10))
    await store.stat_for_serving(rec.id)
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM media_files WHERE id = $1", rec.id)
    await asyncio.sleep(0.3)
    with pytest.raises(MediaNotFound):
        await store.stat_for_serving(rec.id)


# -- the in-memory cache of small files ----------------------------------------------



def test_chunk_cache_bounds_lru_and_drop_media():
    c = ChunkCache(max_total=10)
    c.put((1, 0), b"aaaa")
    c.put((2, 0), b"bbbb")
    assert c.get((1, 0)) == b"aaaa"          # (1, 0) is now the most recent
    c.put((1, 1), b"cc")                     # 10 bytes in all: fits
    assert c.total == 10 and len(c) == 3
    c.put((3, 0), b"d")                      # over: the least recent, (2, 0), goes
    assert c.get((2, 0)) is None and c.get((1, 0)) == b"aaaa" and c.total == 7
    c.put((4, 0), b"e" * 11)                 # bigger than the whole cache: not kept
    assert c.get((4, 0)) is None and c.total == 7
    c.put((1, 0), b"a")                      # replacing keeps the count right
    assert c.total == 4
    c.drop_media(1)                          # a delete takes every chunk of the file
    assert c.get((1, 0)) is None and c.get((1, 1)) is None and c.total == 1
    c.drop_media(99)
    c.clear()
    assert c.total == 0 and len(c) == 0


async def test_short_reads_are_served_from_the_chunk_cache(pool, message_id, db_dsn):
    store = MediaStore(pool, chunk_size=3 * 1024, chunk_cache=ChunkCache(1 << 20))
    data = jpeg_bytes(10_000)                # 4 chunks of 3 KiB
    up = await store.begin_upload(file_name="c.jpg", original_name="c.jpg",
                                  mime_type="image/jpeg", media_type="image")
    await up.write(data)
    rec = await up.finish(message_id)
    assert b"".join([p async for p in store.read(rec, 3000, 3100)]) == data[3000:3101]
    assert b"".join([p async for p in store.read(rec, 9000, 9999)]) == data[9000:]
    # Test-only SQL: take the chunks away behind the store's back; the cache answers
    # the short reads it has seen, a long read goes to the database and finds them gone.
    await admin(db_dsn, f"DELETE FROM content_chunks WHERE content_id = {int(rec.content_id)}")
    assert b"".join([p async for p in store.read(rec, 100, 199)]) == data[100:200]
    assert b"".join([p async for p in store.read(rec, 9990, 9999)]) == data[9990:]
    with pytest.raises(StorageCorrupt):
        [p async for p in store.read(rec, 0, rec.file_size - 1)]
    # A delete heard (here, or through the deletion feed) drops them.
    store.forget(rec.id)
    with pytest.raises(StorageCorrupt):
        [p async for p in store.read(rec, 0, 10)]


async def test_chunk_writes_commit_asynchronously_without_leaking_the_setting(pool):
    # append_chunks turns synchronous_commit off for its own transaction only: the pooled
    # connection must come back with the server's setting, or every later write on it
    # (finalising uploads, deletes, audit rows) would lose its durability.
    from server.store.sqlfiles import Q
    async with pool.acquire() as conn:
        before = await conn.fetchval("SHOW synchronous_commit")
        media_id, content_id = await Q.create_upload.fetchrow(
            conn, file_name="s.bin", original_name="s.bin", mime_type="image/jpeg",
            media_type="image", chunk_size=3, instance_id=None)
        status = await Q.append_chunks.execute(conn, media_id=media_id, first_seq=0,
                                               content_id=content_id,
                                               data0=b"QUJD", data1=b"REVG", data2=None,
                                               data3=None, stored_bytes=6, chunk_count=2)
        assert status == "UPDATE 1"
        assert await conn.fetchval("SHOW synchronous_commit") == before == "on"
        assert await conn.fetch("SELECT seq, data FROM " + OF_MEDIA + " ORDER BY seq",
                                media_id) == [(0, "QUJD"), (1, "REVG")]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 17, 18, 19])
def test_pieces_decode_exactly_the_range_in_bounded_pieces(n):
    from server.store.media import _pieces
    raw = os.urandom(n)
    text = base64.b64encode(raw)
    for lo in range(n):
        for hi in range(lo + 1, n + 1):
            for size in (3, 6, 9):
                got = list(_pieces(None, 0, text, lo, hi, size))
                assert b"".join(got) == raw[lo:hi], (lo, hi, size)
                assert all(0 < len(p) <= size for p in got)


async def test_ranges_inside_default_size_chunks_are_exact(pool, message_id):
    # Chunks larger than a piece: ranges starting and ending anywhere inside them.
    store = MediaStore(pool, chunk_size=261_120)
    data = random.Random(11).randbytes(3 * 261_120 + 1001)
    rec = await put(store, message_id, data, piece=100_000)
    rng = random.Random(5)
    for _ in range(25):
        a = rng.randrange(len(data))
        b = rng.randrange(a, min(len(data), a + 600_000))
        assert await get(store, rec, a, b) == data[a:b + 1]
    assert await get(store, rec) == data


async def test_the_next_batch_is_asked_for_while_this_one_is_sent(store, message_id,
                                                                  monkeypatch):
    """The read-ahead overlaps sending (MediaStore._read_range): the next batch is asked
    for as soon as this one has arrived, not once the reader has taken all of it. This
    reader never lets the loop run between pieces, as one whose socket takes every
    piece doesn't; before, its ask went out only after the whole batch."""
    data = os.urandom(7 * CHUNK)
    rec = await put(store, message_id, data)   # batches: 0, 1-2, 3-6
    events = []
    read_chunks = store._read_chunks

    async def spy(rec, first, last):
        events.append(("ask", first))
        return await read_chunks(rec, first, last)

    monkeypatch.setattr(store, "_read_chunks", spy)
    got = bytearray()
    async for piece in store.read(rec, 0, rec.file_size - 1):
        events.append(("piece", len(got) // CHUNK))
        got += piece
    assert got == data
    assert [e for e in events if e[0] == "ask"] == [("ask", 0), ("ask", 1), ("ask", 3)]
    # Asked for before the first piece of the batch before it was taken.
    assert events.index(("ask", 1)) < events.index(("piece", 0)), events
    assert events.index(("ask", 3)) < events.index(("piece", 1)), events
