"""Benchmark: giving a purge's space back to the operating system (docs/storage.md).
Never part of the test run.

    python bench/bench_vacuum_full.py [--mib 256] [--file-mib 4] [--table content_chunks]
                                      [--database-url URL]

Stores MiB of distinct content (random bytes, in 4 MiB files, the production chunk
size) against DATABASE_URL or a throwaway embedded PostgreSQL, purges half of it by
retention (server/store/purge.py), then measures, on the chunk table (TOAST and
indexes counted): its size after the purge, after a plain VACUUM (what autovacuum
does: space reusable, files the same size) and after VACUUM FULL (files rewritten
and shrunk), each with its wall time, and how long a one-chunk read issued during
the VACUUM FULL waited for its ACCESS EXCLUSIVE lock. Machines here are noisy:
compare runs made together, not absolute figures.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHUNK_BYTES = 261_120


def mb(n: int) -> str:
    return f"{n / 1024**2:8.1f} MiB"


async def fill(store, message_id: int, total_mib: int, file_mib: int) -> list[int]:
    ids = []
    for _ in range(total_mib // file_mib):
        up = await store.begin_upload(file_name=f"{uuid.uuid4().hex}.bin",
                                      original_name="v.mp4", mime_type="video/mp4",
                                      media_type="video")
        for _ in range(file_mib):
            await up.write(os.urandom(1024**2))
        ids.append((await up.finish(message_id)).id)
    return ids


async def bench(dsn: str, a: argparse.Namespace) -> None:
    from server.retention.rules import Selection
    from server.settings import Settings
    from server.store.media import MediaStore
    from server.store.pool import create_pool
    from server.store.purge import purge

    pool = await create_pool(dsn, Settings(), admin=True)
    store = MediaStore(pool, chunk_size=CHUNK_BYTES)
    size = "SELECT pg_total_relation_size($1::regclass)"
    try:
        message_id = await store.create_message()
        t = time.perf_counter()
        ids = await fill(store, message_id, a.mib, a.file_mib)
        print(f"stored      {a.mib} MiB in {len(ids)} files: {time.perf_counter() - t:6.1f} s")
        async with pool.acquire() as conn:   # bench harness: age half of it
            full = await conn.fetchval(size, a.table)
            await conn.execute("UPDATE media_files SET created_at = now() - interval "
                               "'400 days' WHERE id = ANY($1::int[])", ids[::2])
        t = time.perf_counter()
        went = await purge(store, Selection(timedelta(days=365), label="bench"), "bench")
        print(f"purged      {went.files} files, {went.bytes / 1024**2:.0f} MiB: "
              f"{time.perf_counter() - t:6.1f} s")
        # The purged media's contents go with the reclaim (no grace here).
        await store.reclaim_orphaned_contents(0)
        async with pool.acquire() as conn, pool.acquire() as reader:
            print(f"table       {mb(full)} before the purge")
            print(f"table       {mb(await conn.fetchval(size, a.table))} after it")
            t = time.perf_counter()
            await conn.execute(f"VACUUM {a.table}")
            print(f"VACUUM      {mb(await conn.fetchval(size, a.table))} "
                  f"{time.perf_counter() - t:6.1f} s (space reusable, files unchanged)")
            keep = ids[1]
            t = time.perf_counter()
            full_task = asyncio.ensure_future(conn.execute(f"VACUUM FULL {a.table}"))
            await asyncio.sleep(0.2)   # the rewrite holds its lock by now
            r = time.perf_counter()
            await reader.fetchval(f"SELECT length(data) FROM {a.table} WHERE content_id = "
                                  "(SELECT content_id FROM media_files WHERE id = $1) "
                                  "AND seq = 0", keep)
            waited = time.perf_counter() - r
            await full_task
            took = time.perf_counter() - t
            print(f"VACUUM FULL {mb(await conn.fetchval(size, a.table))} {took:6.1f} s; "
                  f"a one-chunk read issued 0.2 s in waited {waited:.1f} s")
    finally:
        await pool.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--file-mib", type=int, default=4)
    ap.add_argument("--table", default="content_chunks",
                    help="the chunk table (content_chunks with content-addressed storage)")
    ap.add_argument("--database-url")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-vacuum-"))
    pg = None
    try:
        dsn = a.database_url
        if dsn is None:
            from server.cli import embedded_pg
            pg = embedded_pg.start(tmp / "db")
            dsn = pg.get_uri()
        from server.cli.migrate import apply_migrations
        apply_migrations(dsn)
        asyncio.run(bench(dsn, a))
    finally:
        if pg is not None:
            embedded_pg.stop(pg)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
