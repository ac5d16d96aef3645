"""Benchmarks: upload throughput, full download throughput, and the cost of a small
range at the start versus the end of a large file. Never part of the test run.

    python bench/bench_media.py [--size-mib 256] [--database-url URL] [--set VAR=VALUE ...]

A change made for speed is measured against its setting turned off, alternating in
one run, e.g. the metadata cache:

    for i in 1 2; do for c in 0 30; do
        python bench/bench_media.py --size-mib 64 --repeat 300 \
            --set MEDIA_METADATA_CACHE_SECONDS=$c | grep range; done; done

Starts the real server (run.py) as a separate process on a free port, against
DATABASE_URL or a throwaway embedded PostgreSQL, and talks to it over loopback HTTP.
Machines here are noisy: compare the ratios printed, not absolute times.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
MP4_HEAD = bytes.fromhex("0000001c667479706d703432000000006d7034326d70343169736f6d")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_ready(base: str, proc: subprocess.Popen) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError("server exited")
            try:
                async with s.get(base + "/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server never became ready")


def body(size: int, piece: int = 256 * 1024):
    block = os.urandom(piece)
    sent = 0
    first = MP4_HEAD + block[len(MP4_HEAD):]
    while sent < size:
        n = min(piece, size - sent)
        yield (first if sent == 0 else block)[:n]
        sent += n


async def run(args) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="media-bench-"))
    env = dict(os.environ, PORT=str(port), MEDIA_DATA_DIR=str(tmp), LOG_LEVEL="WARNING",
               MEDIA_MAX_UPLOAD_BYTES=str(4 * 1024**3))
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    for assignment in args.set:
        name, _, value = assignment.partition("=")
        env[name] = value
    msg = subprocess.run([sys.executable, "run.py", "create-message"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    key = subprocess.run([sys.executable, "run.py", "keys", "create", f"bench-{port}"],
                         cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    proc = subprocess.Popen([sys.executable, "run.py"], cwd=ROOT, env=env)
    try:
        await wait_ready(base, proc)
        size = args.size_mib * 1024 * 1024
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as s:
            sha = hashlib.sha256()

            async def gen():
                for piece in body(size):
                    sha.update(piece)
                    yield piece

            t = time.perf_counter()
            async with s.post(f"{base}/api/media/upload-production?message_id={msg}",
                              data=gen(), headers={"Content-Type": "video/mp4",
                                                   "Authorization": f"Bearer {key}"}) as r:
                meta = await r.json()
            up = time.perf_counter() - t
            assert meta["sha256"] == sha.hexdigest(), meta
            url = base + meta["url"]   # signed: read as phones read, without the key
            read_headers = {"Authorization": f"Bearer {key}"} if args.read_with_key else {}
            print(f"upload   {args.size_mib} MiB: {up:.2f} s  {args.size_mib / up:.0f} MiB/s")

            t = time.perf_counter()
            n = 0
            async with s.get(url, headers=read_headers) as r:
                async for piece in r.content.iter_chunked(1 << 20):
                    n += len(piece)
            down = time.perf_counter() - t
            assert n == size
            print(f"download {args.size_mib} MiB: {down:.2f} s  {args.size_mib / down:.0f} MiB/s")

            async def timed(rng: str) -> float:
                t = time.perf_counter()
                async with s.get(url, headers={"Range": rng, **read_headers}) as r:
                    await r.read()
                    assert r.status == 206
                return time.perf_counter() - t

            # The end range sits in the last *full* chunk: the file's final chunk may be
            # a few bytes only, which would flatter the end.
            chunk = 261_120
            end_at = (size // chunk - 1) * chunk + chunk // 2
            starts, ends = [], []
            for _ in range(args.repeat):   # interleaved, so noise hits both alike
                starts.append(await timed("bytes=0-1023"))
                ends.append(await timed(f"bytes={end_at}-{end_at + 1023}"))
            ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
            print(f"1 KiB range at start: median {ms(starts):.2f} ms; near the end: "
                  f"median {ms(ends):.2f} ms; end/start = {ms(ends) / ms(starts):.2f}")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--database-url")
    p.add_argument("--read-with-key", action="store_true",
                   help="read with the API key instead of the signed URL (one lookup per request)")
    p.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                   help="a server setting for this run")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
