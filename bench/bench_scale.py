"""Does a read get slower as the chunk table grows? Seeds 10k, then 100k one-chunk
files straight into the tables and times the serving path's two statements (metadata,
then the chunks of a range) for random ids at each size. Never part of the test run.

    python bench/bench_scale.py [--sizes 10000,100000] [--reads 2000] [--database-url URL]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.store.sqlfiles import Q, parse_sql  # noqa: E402

SEED = parse_sql((ROOT / "bench" / "seed.sql").read_text())
FILE_SIZE = 3000


async def measure(dsn: str, sizes: list[int], reads: int) -> None:
    conn = await asyncpg.connect(dsn)
    data = base64.b64encode(os.urandom(FILE_SIZE)).decode()
    have = 0
    print(f"{'files':>9} {'chunk table':>12} {'metadata p50':>13} {'chunks p50':>11} "
          f"{'p99 (both)':>11}")
    for target in sizes:
        while have < target:
            n = min(20_000, target - have)
            await SEED["seed_files"].execute(conn, count=n, tag=f"{have}",
                                             file_size=FILE_SIZE, data=data)
            have += n
        await conn.execute("ANALYZE media_files")   # bench harness: fresh statistics
        await conn.execute("ANALYZE content_chunks")
        lo, hi = await SEED["seeded_ids"].fetchrow(conn)
        size = await SEED["chunk_table_bytes"].fetchval(conn)
        meta, chunk, both = [], [], []
        for _ in range(reads):
            media_id = random.randint(lo, hi)
            t0 = time.perf_counter()
            rec = await Q.get_media.fetchrow(conn, id=media_id)
            t1 = time.perf_counter()
            await Q.read_chunks.fetch(conn, content_id=rec["content_id"], first_seq=0,
                                      last_seq=0)
            t2 = time.perf_counter()
            meta.append(t1 - t0)
            chunk.append(t2 - t1)
            both.append(t2 - t0)
        q = statistics.quantiles(both, n=100)
        print(f"{have:>9} {size / 2**20:>9.0f} MiB {statistics.median(meta) * 1e3:>10.3f} ms "
              f"{statistics.median(chunk) * 1e3:>8.3f} ms {q[98] * 1e3:>8.3f} ms", flush=True)
    await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--reads", type=int, default=2000)
    ap.add_argument("--database-url")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    if args.database_url:
        asyncio.run(measure(args.database_url, sizes, args.reads))
        return
    from server.cli import embedded_pg
    from server.cli.migrate import apply_migrations
    tmp = Path(tempfile.mkdtemp(prefix="media-scale-", dir="/tmp"))
    pg = embedded_pg.start(tmp / "pgdata")
    try:
        apply_migrations(pg.get_uri())
        asyncio.run(measure(pg.get_uri(), sizes, args.reads))
    finally:
        embedded_pg.stop(pg)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
