"""Migration 0018 (content-addressed storage) on a database filled under the previous
schema: every media and variant reads back byte for byte with its sha256 (its ETag)
unchanged, identical bytes are stored once, an upload in progress (a tus one) keeps
its chunks; and the same after rolling it back."""
from __future__ import annotations

import asyncio
import hashlib
import os
import uuid

import asyncpg
import pybase64

from server.cli.migrate import MIGRATIONS_DIR, apply_migrations, rollback_migrations

MIGRATION = "0018_content_addressed"
CS = 6   # raw bytes per chunk: small, so every file has several


def _ids() -> list[str]:
    from yoyo import read_migrations
    from yoyo.migrations import topological_sort
    return [m.id for m in topological_sort(read_migrations(str(MIGRATIONS_DIR)))]


def _chunks(data: bytes) -> list[str]:
    return [pybase64.b64encode(data[i:i + CS]).decode() for i in range(0, len(data), CS)]


async def _fill_previous_schema(conn) -> dict:
    """Media (two forwarded copies of one file, one with a placeholder), variants (one
    equal to a media's bytes; a thumbnail), a tus upload in progress, a legacy row, a
    delivery, a purged media's tombstone and a quarantined content, as 0017 stored them."""
    msg = await conn.fetchval("INSERT INTO messages DEFAULT VALUES RETURNING id")
    shared, other, preview = os.urandom(40), os.urandom(17), os.urandom(13)
    files = {}
    for name, data in (("a", shared), ("b", shared), ("c", other), ("d", preview)):
        mid = await conn.fetchval(
            "INSERT INTO media_files (message_id, file_name, original_name, mime_type,"
            " media_type, file_size, chunk_size, chunk_count, sha256, upload_state,"
            " completed_at) VALUES ($1, $2, $2, 'image/jpeg', 'image', $3, $4, $5, $6,"
            " 'complete', now()) RETURNING id",
            msg, f"{name}.jpg", len(data), CS, len(_chunks(data)),
            hashlib.sha256(data).digest())
        for seq, text in enumerate(_chunks(data)):
            await conn.execute("INSERT INTO media_chunks VALUES ($1, $2, $3)", mid, seq, text)
        files[mid] = data
    variants = {}
    thumb = os.urandom(11)
    for mid, name, data in ((min(files), "preview", preview),
                            (max(files) - 1, "preview", preview),
                            (max(files), "thumb_96x96_crop", thumb)):
        await conn.execute(
            "INSERT INTO media_variants (media_id, name, mime_type, file_size, sha256,"
            " chunk_size, chunk_count) VALUES ($1, $2, 'image/jpeg', $3, $4, $5, $6)",
            mid, name, len(data), hashlib.sha256(data).digest(), CS, len(_chunks(data)))
        for seq, text in enumerate(_chunks(data)):
            await conn.execute("INSERT INTO media_variant_chunks VALUES ($1, $2, $3, $4)",
                               mid, name, seq, text)
        variants[mid] = data
    await conn.execute("UPDATE media_files SET placeholder = 'LEHV6nWB2yk8pyo0adR*.7kCMdnj'"
                       " WHERE id = $1", min(files))
    await conn.execute("INSERT INTO purged_media (id, message_id, media_type, file_size,"
                       " created_at) VALUES (1000000, $1, 'video', 5, now())", msg)
    await conn.execute("INSERT INTO quarantined_contents (sha256, reason, quarantined_by,"
                       " media_id) VALUES ($1, 'malware', 'admin', $2)",
                       hashlib.sha256(other).digest(), min(files) + 2)
    part = os.urandom(2 * CS)
    part_id = await conn.fetchval(
        "INSERT INTO media_files (file_name, original_name, mime_type, media_type,"
        " file_size, chunk_size, chunk_count) VALUES ('t.part', 't', 'application/octet-stream',"
        " 'document', $1, $2, 2) RETURNING id", len(part), CS)
    for seq, text in enumerate(_chunks(part)):
        await conn.execute("INSERT INTO media_chunks VALUES ($1, $2, $3)", part_id, seq, text)
    await conn.execute(
        "INSERT INTO tus_uploads (id, media_id, upload_length, message_id, creator,"
        " expires_at, tail) VALUES ($1, $2, 100, $3, 'k', now() + interval '1 day', 'xy')",
        uuid.uuid4(), part_id, msg)
    await conn.execute(
        "INSERT INTO legacy_media (legacy_name, media_id, sha256, file_size, file_mtime)"
        " VALUES ('old/c.jpg', $1, $2, $3, now())", min(files) + 2,
        hashlib.sha256(other).digest(), len(other))
    await conn.execute("INSERT INTO zapi_deliveries (media_id, phone) VALUES ($1, '5511')",
                       min(files))
    return {"files": files, "variants": variants, "part": (part_id, part)}


async def _check(conn, filled: dict, *, contents: bool) -> None:
    for mid, data in filled["files"].items():
        text = await conn.fetchval("SELECT media_file_data($1)", mid)
        assert pybase64.b64decode(text) == data
        row = await conn.fetchrow("SELECT sha256 FROM media_files_complete WHERE id = $1", mid)
        assert row["sha256"] == hashlib.sha256(data).hexdigest()   # the ETag
    table, key = (("content_chunks k JOIN media_variants v ON k.content_id = v.content_id",
                   "v.media_id") if contents else ("media_variant_chunks v", "v.media_id"))
    for mid, data in filled["variants"].items():
        texts = await conn.fetch(f"SELECT data FROM {table} WHERE {key} = $1 ORDER BY seq", mid)
        assert pybase64.b64decode("".join(r["data"] for r in texts)) == data
    part_id, part = filled["part"]
    table, key = (("content_chunks k JOIN media_files f ON k.content_id = f.content_id",
                   "f.id") if contents else ("media_chunks f", "f.media_id"))
    texts = await conn.fetch(f"SELECT data FROM {table} WHERE {key} = $1 ORDER BY seq", part_id)
    assert pybase64.b64decode("".join(r["data"] for r in texts)) == part
    assert await conn.fetchval("SELECT count(*) FROM zapi_deliveries") == 1
    assert await conn.fetchval("SELECT count(*) FROM legacy_media") == 1
    assert await conn.fetchval("SELECT tail FROM tus_uploads") == b"xy"
    assert await conn.fetchval("SELECT count(*) FROM media_files WHERE placeholder IS NOT NULL"
                               ) == 1
    assert await conn.fetchval("SELECT count(*) FROM purged_media") == 1
    # Quarantine is by sha256: the media showing those bytes still say so.
    assert await conn.fetchval("SELECT media_quarantine_reason(sha256) FROM media_files"
                               " WHERE id = $1", min(filled["files"]) + 2) == "malware"


async def test_migration_dedups_and_rolls_back_byte_for_byte(db_dsn):
    ids = _ids()
    back = len(ids) - ids.index(MIGRATION)
    assert MIGRATION in await asyncio.to_thread(rollback_migrations, db_dsn, back)
    conn = await asyncpg.connect(db_dsn)
    try:
        filled = await _fill_previous_schema(conn)
        await _check(conn, filled, contents=False)
        assert MIGRATION in await asyncio.to_thread(apply_migrations, db_dsn)
        await _check(conn, filled, contents=True)
        # a, b (forwarded copies) and d (= the previews) share: 2 stored + c + the
        # thumbnail + the part.
        counts = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE state = 'stored') AS stored,"
            " count(*) FILTER (WHERE state = 'writing') AS writing FROM media_contents")
        assert (counts["stored"], counts["writing"]) == (4, 1)
        for name in ("broken_complete_without_chunks", "broken_chunk_gaps",
                     "broken_orphaned_chunks", "broken_rows_missing_content",
                     "unreferenced_contents"):
            from server.store.sqlfiles import Q
            assert await getattr(Q, name).fetch(conn) == [], name
        assert MIGRATION in await asyncio.to_thread(rollback_migrations, db_dsn, back)
        await _check(conn, filled, contents=False)
        await asyncio.to_thread(apply_migrations, db_dsn)
        await _check(conn, filled, contents=True)
    finally:
        await conn.close()
