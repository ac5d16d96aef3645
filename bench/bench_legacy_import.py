"""Benchmark: import-legacy, verify and a re-run over a generated legacy folder.
Never part of the test run.

    python bench/bench_legacy_import.py [--files 200] [--size-kib 512] [--process]
                                        [--database-url URL]

Makes a folder of real JPEGs (a 640x480 photo-like image, padded with random bytes to
the size asked, which decoders ignore) and a messages column pointing at them, then
runs the real commands (run.py) against DATABASE_URL or a throwaway embedded
PostgreSQL and prints each one's wall time and throughput. Each import decodes every
image and makes its preview (media processing, bytes kept); ``--process`` also
compresses and strips. Machines here are noisy: compare runs made together, not
absolute figures.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent


def jpeg(size: int) -> bytes:
    import io

    from PIL import Image
    img = Image.frombytes("RGB", (640, 480), os.urandom(640 * 480 * 3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    data = buf.getvalue()
    return data + os.urandom(max(0, size - len(data)))


def run(args: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    res = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], env=env,
                         capture_output=True, text=True, timeout=3600)
    took = time.perf_counter() - t
    if res.returncode != 0:
        sys.exit(f"{args[0]} failed: {res.stdout[-2000:]}{res.stderr[-2000:]}")
    return took


async def seed(dsn: str, names: list[str]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        # Bench harness: the chat's column and one message per file.
        await conn.execute("ALTER TABLE messages ADD COLUMN IF NOT EXISTS media_url TEXT")
        await conn.executemany("INSERT INTO messages (media_url) VALUES ($1)",
                               [(f"/uploads/media/{n}",) for n in names])
    finally:
        await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--size-kib", type=int, default=512)
    ap.add_argument("--process", action="store_true",
                    help="import with --process (compress, strip)")
    ap.add_argument("--database-url")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-legacy-"))
    pg = None
    try:
        dsn = a.database_url
        if dsn is None:
            sys.path.insert(0, str(ROOT))
            from server.cli import embedded_pg
            pg = embedded_pg.start(tmp / "db")
            dsn = pg.get_uri()
        folder = tmp / "media"
        folder.mkdir()
        names = [f"{uuid.uuid4().hex}.jpg" for _ in range(a.files)]
        for n in names:
            (folder / n).write_bytes(jpeg(a.size_kib * 1024))
        env = {**os.environ, "DATABASE_URL": dsn}
        run(["migrate"], env)
        asyncio.run(seed(dsn, names))
        mib = a.files * a.size_kib / 1024
        flags = ["--process"] if a.process else []
        for label, args in (("import", ["import-legacy", "--from", str(folder), *flags]),
                            ("re-run", ["import-legacy", "--from", str(folder)]),
                            ("verify --from", ["verify", "--from", str(folder)])):
            took = run(args, env)
            print(f"{label:14s} {a.files} files, {mib:.0f} MiB: {took:6.1f} s "
                  f"({mib / took:6.1f} MiB/s, {a.files / took:6.0f} files/s)")
    finally:
        if pg is not None:
            embedded_pg.stop(pg)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
