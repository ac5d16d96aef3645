"""The service against a Citus cluster (a coordinator and two workers) and against one
PostgreSQL, side by side in one run, on this machine: uploads and reads through HTTP,
and where a read of one media goes. On one machine the cluster's nodes share the same
cores and disk: this shows what distribution costs per request, not what it gains.
Never part of the test run; needs Citus built (../shared/citus/build.sh).

    python bench/bench_citus.py [--files 200] [--size 262144] [--concurrency 8]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.cli.distribute import distribute  # noqa: E402
from server.cli.migrate import apply_migrations  # noqa: E402
from server.settings import Settings  # noqa: E402
from server.store.sqlfiles import Q  # noqa: E402
from tests.apps import build_app, start_client  # noqa: E402
from tests.citus_cluster import NODE_OPTIONS, start_cluster, unavailable  # noqa: E402
from tests.dbutil import create_api_key, new_message  # noqa: E402
from tests.media import BYTES_KEPT, jpeg_bytes  # noqa: E402
from tests.pgcluster import Cluster, Node, machine_bindir  # noqa: E402
from tests.procs import free_port  # noqa: E402


async def _run(dsn: str, files: int, size: int, concurrency: int) -> dict[str, float]:
    settings = Settings(database_url=dsn, max_upload_bytes=64 * 1024**2, **BYTES_KEPT)
    client = await start_client(build_app(settings, dsn),
                                key=await create_api_key(dsn, "admin"))
    gate = asyncio.Semaphore(concurrency)
    message = await new_message(dsn)
    bodies = [jpeg_bytes(size, seed=i) for i in range(files)]
    ids: list[int] = []

    async def upload(data: bytes) -> None:
        async with gate:
            r = await client.post("/api/media/upload-production",
                                  params={"message_id": str(message)}, data=data,
                                  headers={"Content-Type": "image/jpeg"})
            assert r.status == 201, await r.text()
            ids.append((await r.json())["id"])

    async def read(media_id: int) -> None:
        async with gate:
            r = await client.get(f"/api/media/serve/{media_id}")
            assert r.status == 200
            await r.read()

    try:
        t = time.perf_counter()
        await asyncio.gather(*(upload(b) for b in bodies))
        up = time.perf_counter() - t
        t = time.perf_counter()
        await asyncio.gather(*(read(i) for i in ids))
        down = time.perf_counter() - t
    finally:
        await client.close()
    mib = files * size / 2**20
    return {"upload MiB/s": mib / up, "uploads/s": files / up,
            "read MiB/s": mib / down, "reads/s": files / down}


async def _where(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        media_id = await conn.fetchval("SELECT max(id) FROM media_files")   # bench harness
        plan = await conn.fetch(f"EXPLAIN {Q.serve_chunks.sql}", media_id, 0, 3)
    finally:
        await conn.close()
    return "\n".join("    " + r[0] for r in plan)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--size", type=int, default=256 * 1024)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    if reason := unavailable():
        print(f"no Citus: {reason}")
        return 1
    citus = start_cluster(workers=2)
    single = Cluster(machine_bindir())
    try:
        # The same server settings as the cluster's nodes, Citus aside.
        plain = Node(single.bindir, single._dir("single"), free_port(),
                     NODE_OPTIONS.replace("-c shared_preload_libraries=citus ", ""))
        plain.run("initdb", "-D", str(plain.datadir), "-U", "postgres", "-A", "trust",
                  "--no-sync")
        plain.start()
        single.nodes.append(plain)
        asyncio.run(_create(plain.dsn))
        plain_dsn = plain.dsn_for("media")
        apply_migrations(plain_dsn)
        apply_migrations(citus.dsn)
        asyncio.run(distribute(citus.dsn, out=lambda _: None))
        rows = {}
        for name, dsn in (("one PostgreSQL", plain_dsn), ("Citus, 2 workers", citus.dsn)):
            rows[name] = asyncio.run(_run(dsn, args.files, args.size, args.concurrency))
        print(f"{args.files} files of {args.size} bytes, {args.concurrency} at a time, "
              f"{os.cpu_count()} cores")
        keys = list(next(iter(rows.values())))
        print(f"{'':18}" + "".join(f"{k:>14}" for k in keys))
        for name, row in rows.items():
            print(f"{name:18}" + "".join(f"{row[k]:>14.1f}" for k in keys))
        print("where a read of one media's chunks goes (Citus):")
        print(asyncio.run(_where(citus.dsn)))
    finally:
        citus.close()
        single.close()
    return 0


async def _create(server_dsn: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute('CREATE DATABASE "media"')   # bench harness
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
