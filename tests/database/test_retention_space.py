"""The space comes back (issue 26): after purging half of what is stored, the reclaim
and a plain VACUUM (what autovacuum does), storing the same volume of new content
again grows the chunk table by no more than a tenth: PostgreSQL reuses the freed
pages, TOAST included, rather than extending the files.

The table that holds the bytes is named once, in CHUNK_TABLE, and what frees the
chunks no media shows once, in ``reclaim``: with content-addressed storage (issue 24)
they become ``content_chunks`` and the store's reclaim of orphaned contents.

Measured here: 128 MiB stored (186 MB of table), half purged; the second 64 MiB grew
it by 1.3 MB (0.7 %). Without the VACUUM it grows by 93 MB (50 %): the test fails.
"""
import os
import uuid
from datetime import timedelta

from server.retention.rules import Selection
from server.store.media import MediaStore
from server.store.purge import purge

# The chunk table (its TOAST and indexes are counted with it).
CHUNK_TABLE = "content_chunks"
CHUNK_BYTES = 261_120             # the production chunk size, not the fixture's 3 KiB
FILE_BYTES = 4 * 1024**2
STORED_BYTES = 128 * 1024**2      # 32 files of 4 MiB, each one distinct
GROWTH_ALLOWED = 0.10


async def reclaim(store: MediaStore) -> None:
    """Free the chunks no media shows any more: the contents the purge left to the
    reclaim, at once (no grace)."""
    await store.reclaim_orphaned_contents(0)


async def chunk_table_bytes(store: MediaStore) -> int:
    async with store.connection() as conn:
        return await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", CHUNK_TABLE)


async def store_distinct(store: MediaStore, message_id: int, total: int) -> list[int]:
    ids = []
    for _ in range(total // FILE_BYTES):
        up = await store.begin_upload(file_name=f"{uuid.uuid4().hex}.bin",
                                      original_name="v.mp4", mime_type="video/mp4",
                                      media_type="video")
        for _ in range(FILE_BYTES // (1024**2)):
            await up.write(os.urandom(1024**2))   # random: every chunk distinct
        ids.append((await up.finish(message_id)).id)
    return ids


async def test_new_uploads_reuse_the_space_a_purge_freed(pool, message_id):
    store = MediaStore(pool, chunk_size=CHUNK_BYTES)
    ids = await store_distinct(store, message_id, STORED_BYTES)
    full = await chunk_table_bytes(store)
    assert full >= STORED_BYTES * 4 / 3   # the base64 is all there

    async with store.connection() as conn:   # test harness: age half of it
        await conn.execute("UPDATE media_files SET created_at = now() - interval '400 days' "
                           "WHERE id = ANY($1::int[])", ids[::2])
    went = await purge(store, Selection(timedelta(days=365), label="test"), "test")
    assert went.files == len(ids) // 2
    await reclaim(store)
    async with store.connection() as conn:
        await conn.execute(f"VACUUM {CHUNK_TABLE}")   # plain, as autovacuum runs it

    await store_distinct(store, message_id, went.bytes)
    grown = await chunk_table_bytes(store) - full
    assert grown <= GROWTH_ALLOWED * full, f"grew {grown} bytes over {full}"
