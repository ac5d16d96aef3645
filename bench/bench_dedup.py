"""Forwarding: the same 50 files uploaded 20 times each, against a real server (issue 24).

    python bench/bench_dedup.py [--files 50] [--times 20] [--kib 300]

Starts ``python run.py`` on an embedded PostgreSQL in a temporary folder, uploads
--files different files (--kib KiB each, on average) --times times each over HTTP, as a
school chat forwards one circular to every group, then prints what `stats --json` says
was stored against what was uploaded, and the upload rate of the first copies against
the forwarded ones (a forwarded copy still streams in whole; only its chunks are
dropped at the end).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.media import jpeg_bytes  # noqa: E402
from tests.procs import Processes, run_cli  # noqa: E402


async def upload_all(url: str, key: str, message_id: int, files: list[bytes],
                     parallel: int = 4) -> float:
    """Upload every file once (``parallel`` at a time); seconds taken."""
    sem = asyncio.Semaphore(parallel)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        async def one(i: int, data: bytes) -> None:
            async with sem:
                async with http.post(f"{url}/api/media/upload-production?message_id="
                                     f"{message_id}&filename=f{i}.jpg", data=data,
                                     headers={"Content-Type": "image/jpeg"}) as r:
                    assert r.status == 201, await r.text()
        started = time.monotonic()
        await asyncio.gather(*(one(i, d) for i, d in enumerate(files)))
        return time.monotonic() - started


async def main(args) -> None:
    procs = Processes()
    try:
        env = {"MEDIA_DATA_DIR": str(procs.data_dir()), "LOG_LEVEL": "WARNING"}
        message_id = int(run_cli(["create-message"], env).stdout.strip())
        key = run_cli(["keys", "create", "bench"], env).stdout.strip()
        srv = procs.start(env)
        rng = random.Random(24)
        files = [jpeg_bytes(rng.randint(args.kib * 512, args.kib * 1536), seed=i)
                 for i in range(args.files)]
        first = await upload_all(srv.url, key, message_id, files)
        again = 0.0
        for _ in range(args.times - 1):
            again += await upload_all(srv.url, key, message_id, files)
        stats = json.loads(run_cli(["stats", "--json"], env, timeout=300).stdout)
        st = stats["storage"]
        mib = sum(map(len, files)) / 2**20
        rows = [("uploads", f"{args.files} files x {args.times}"),
                ("logical bytes", f"{st['logical_bytes']:,}"),
                ("stored bytes", f"{st['stored_bytes']:,}"),
                ("saved by dedup", f"{st['dedup_saved_bytes']:,} "
                                   f"({st['dedup_saved_bytes'] / max(1, st['logical_bytes']):.1%})"),
                ("contents", f"{st['contents']:,}"),
                ("chunk table on disk", f"{stats['chunk_table_bytes']:,}"),
                ("first copies", f"{mib / first:.1f} MiB/s"),
                ("forwarded copies", f"{mib * (args.times - 1) / max(again, 1e-9):.1f} MiB/s")]
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
    finally:
        procs.cleanup()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=50)
    p.add_argument("--times", type=int, default=20)
    p.add_argument("--kib", type=int, default=300)
    asyncio.run(main(p.parse_args()))
