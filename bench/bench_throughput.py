"""Large files: the service's upload and download rates against what PostgreSQL itself
moves for the same chunks, side by side in one run. Never part of the test run.

    python bench/bench_throughput.py [--size-mib 256] [--rounds 3] [--set VAR=VALUE ...]

References, measured in alternation with the service:
  upload    COPY of the same base64 chunks into content_chunks from this script (one
            statement, one transaction; the script encodes with pybase64)
  download  a tight asyncpg loop reading the chunks (read_chunks, 4 per round trip, one
            after the other) and decoding them with pybase64's validating decoder, the
            fastest it has; no HTTP, and none of the server's malloc settings
Beside the rates, the server's CPU time per MiB moved (its own process, from /proc):
the steadier figure on a shared machine, where the rates move with the load.
The uploaded file is a PDF, which passes the default processing as it is (documents
are spooled and checked, not rewritten); --set MEDIA_PROCESSING=false measures the
store alone.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pybase64

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_serving import free_port, wait_ready  # noqa: E402
from server.store.sqlfiles import Q  # noqa: E402

CHUNK = 261_120
# A PDF (head and end-of-file marker around random bytes): it passes the default
# processing (documents are kept as sent; only the marker is checked), so the figure is
# the upload path as a user runs it, spool included. --set MEDIA_PROCESSING=false
# measures the store alone.
PDF_HEAD = b"%PDF-1.4\n"
PDF_TAIL = b"\n%%EOF\n"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def payload(size: int) -> list[bytes]:
    block = os.urandom(CHUNK)
    pieces = [block] * (size // CHUNK) + ([block[: size % CHUNK]] if size % CHUNK else [])
    pieces[0] = PDF_HEAD + pieces[0][len(PDF_HEAD):]
    pieces[-1] = pieces[-1][:-len(PDF_TAIL)] + PDF_TAIL
    return pieces


async def service_upload(base: str, message_id: int, pieces: list[bytes],
                         key: str) -> tuple[float, dict]:
    async def gen():
        for p in pieces:
            yield p
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as s:
        t = time.perf_counter()
        async with s.post(f"{base}/api/media/upload-production?message_id={message_id}"
                          "&filename=big.pdf", data=gen(),
                          headers={"Content-Type": "application/pdf",
                                   "Authorization": f"Bearer {key}"}) as r:
            meta = await r.json()
            assert r.status == 201, meta
        return time.perf_counter() - t, meta


async def copy_upload(dsn: str, pieces: list[bytes]) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        t = time.perf_counter()
        media_id, content_id = await Q.create_upload.fetchrow(
            conn, file_name=f"{uuid.uuid4().hex}.pdf", original_name="copy.pdf",
            mime_type="application/pdf", media_type="document", chunk_size=CHUNK, instance_id=None)
        records = ((content_id, seq, pybase64.b64encode(p).decode())
                   for seq, p in enumerate(pieces))
        await conn.copy_records_to_table("content_chunks", records=records,
                                         columns=["content_id", "seq", "data"])
        elapsed = time.perf_counter() - t
        await Q.delete_upload.execute(conn, id=media_id)
        return elapsed
    finally:
        await conn.close()


async def service_download(url: str) -> tuple[float, int]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as s:
        t = time.perf_counter()
        n = 0
        async with s.get(url) as r:
            async for piece in r.content.iter_chunked(1 << 20):
                n += len(piece)
        return time.perf_counter() - t, n


async def loop_download(dsn: str, media_id: int, chunks: int) -> tuple[float, int]:
    conn = await asyncpg.connect(dsn)
    try:
        t = time.perf_counter()
        n = 0
        for first in range(0, chunks, 4):
            rows = await Q.read_chunks.fetch(conn, media_id=media_id, first_seq=first,
                                             last_seq=min(chunks - 1, first + 3))
            for r in rows:
                n += len(pybase64.b64decode(r["data"], validate=True))
        return time.perf_counter() - t, n
    finally:
        await conn.close()


async def run(args) -> dict:
    from server.cli import embedded_pg
    from server.cli.migrate import apply_migrations
    tmp = Path(tempfile.mkdtemp(prefix="media-thr-", dir="/tmp"))
    pg = embedded_pg.start(tmp / "pgdata")
    proc = None
    try:
        dsn = pg.get_uri()
        apply_migrations(dsn)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIA_", "DB_"))}
        env.update(DATABASE_URL=dsn, MEDIA_MAX_UPLOAD_BYTES=str(8 * 1024**3))
        env.update(dict(kv.split("=", 1) for kv in args.set))
        port = free_port()
        proc = subprocess.Popen([sys.executable, "run.py", "serve", "--no-migrate"], cwd=ROOT,
                                env={**env, "PORT": str(port)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + "/readyz", proc)
        message_id = int(subprocess.run([sys.executable, "run.py", "create-message"], cwd=ROOT,
                                        env=env, capture_output=True, text=True,
                                        check=True).stdout)
        key = subprocess.run([sys.executable, "run.py", "keys", "create", "bench"], cwd=ROOT,
                             env=env, capture_output=True, text=True, check=True).stdout.strip()
        size = args.size_mib * 1024 * 1024
        pieces = payload(size)
        mib = size / 2**20
        res: dict[str, list[float]] = {k: [] for k in
                                       ("upload", "COPY", "download", "asyncpg loop")}
        cpu: dict[str, list[float]] = {"upload": [], "download": []}
        meta = None
        for r in range(args.rounds):
            c = cpu_seconds(proc.pid)
            t, m = await service_upload(base, message_id, pieces, key)
            cpu["upload"].append((cpu_seconds(proc.pid) - c) * 1000 / mib)
            res["upload"].append(mib / t)
            if meta is None:
                meta = m
            else:
                with urllib.request.urlopen(urllib.request.Request(
                        f"{base}/api/media/{m['id']}", method="DELETE",
                        headers={"Authorization": f"Bearer {key}"})):
                    pass
            res["COPY"].append(mib / await copy_upload(dsn, pieces))
            c = cpu_seconds(proc.pid)
            t, n = await service_download(base + meta["url"])
            cpu["download"].append((cpu_seconds(proc.pid) - c) * 1000 / mib)
            assert n == size
            res["download"].append(mib / t)
            t, n = await loop_download(dsn, meta["id"], len(pieces))
            assert n == size
            res["asyncpg loop"].append(mib / t)
            print(f"round {r + 1}: " + "  ".join(f"{k} {v[-1]:.0f} MiB/s" for k, v in res.items())
                  + f"  ratios {res['upload'][-1] / res['COPY'][-1]:.2f}"
                  f" {res['download'][-1] / res['asyncpg loop'][-1]:.2f}"
                  f"  server CPU ms/MiB {cpu['upload'][-1]:.1f} {cpu['download'][-1]:.1f}"
                  f"  load {os.getloadavg()[0]:.1f}", flush=True)
        med = {k: statistics.median(v) for k, v in res.items()}
        med.update({f"server CPU ms/MiB {k}": statistics.median(v) for k, v in cpu.items()})
        print(f"\nmedians over {args.rounds} rounds, {args.size_mib} MiB:")
        print(f"  upload   {med['upload']:6.0f} MiB/s   COPY         {med['COPY']:6.0f} MiB/s"
              f"   ratio {med['upload'] / med['COPY']:.2f}")
        print(f"  download {med['download']:6.0f} MiB/s   asyncpg loop {med['asyncpg loop']:6.0f}"
              f" MiB/s   ratio {med['download'] / med['asyncpg loop']:.2f}")
        print(f"  server CPU per MiB: upload {med['server CPU ms/MiB upload']:.1f} ms, "
              f"download {med['server CPU ms/MiB download']:.1f} ms")
        return med
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        embedded_pg.stop(pg)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="VAR=VALUE")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    med = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(med, indent=2))


if __name__ == "__main__":
    main()
