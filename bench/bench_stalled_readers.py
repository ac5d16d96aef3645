"""Stalled readers against a real server (issue 6): memory, and a small GET's latency.

    python bench/bench_stalled_readers.py --readers 1000 --size-mib 64

Starts ``python run.py`` on an embedded PostgreSQL in a temporary folder, uploads one
file, opens N connections that ask for it and never read, measures the server's RSS
(idle, with the readers stalled, after they have gone) and the latency of small GETs
(/api/media/{id}) during the attack. Loopback only; bounded by --readers and --seconds.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.media import jpeg_bytes  # noqa: E402
from tests.procs import Processes, run_cli  # noqa: E402

AUTH = ""   # the Authorization header line, set once a key exists


async def upload(port: int, message_id: int, data: bytes) -> int:
    import json
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"POST /api/media/upload-production?message_id={message_id} HTTP/1.1\r\n"
                  f"Host: b\r\n{AUTH}Content-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n"
                  "Connection: close\r\n\r\n").encode() + data)
    await writer.drain()
    resp = await reader.read()
    writer.close()
    return json.loads(resp.partition(b"\r\n\r\n")[2])["id"]


async def stalled(port: int, path: str, rcvbuf: int | None):
    import socket
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: b\r\n{AUTH}\r\n".encode())
    await writer.drain()
    return writer


async def small_get(port: int, path: str) -> float:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: b\r\n{AUTH}Connection: close\r\n\r\n".encode())
    await writer.drain()
    await reader.read()
    writer.close()
    return time.perf_counter() - t0


async def main(args) -> None:
    procs = Processes()
    try:
        data_dir = procs.data_dir()
        env = {"MEDIA_DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING",
               **dict(kv.split("=", 1) for kv in args.set)}
        message_id = int(run_cli(["create-message"], env).stdout.strip())
        global AUTH
        AUTH = f"Authorization: Bearer {run_cli(['keys', 'create', 'bench'], env).stdout.strip()}\r\n"
        srv = procs.start(env)
        data = jpeg_bytes(args.size_mib * 1024 * 1024)
        media_id = await upload(srv.port, message_id, data)
        del data
        for _ in range(3):
            await small_get(srv.port, f"/api/media/serve/{media_id}")
        # The same small GET without the attack, on this (shared) machine now.
        quiet = sorted([await small_get(srv.port, f"/api/media/{media_id}")
                        for _ in range(40)])
        await asyncio.sleep(1)
        idle = srv.rss_kib()
        hwm_idle = srv.hwm_kib()   # the upload's own peak, if above idle
        t0 = time.monotonic()
        lat: list[float] = []
        samples: list[tuple[float, int]] = []
        stop = asyncio.Event()

        async def probe() -> None:
            # Open loop: a small GET every 50 ms whether the last one came back or
            # not, so the percentiles are over time, not over the GETs that got through.
            async def one():
                lat.append(await small_get(srv.port, f"/api/media/{media_id}"))
            tasks = []
            while not stop.is_set():
                tasks.append(asyncio.ensure_future(one()))
                samples.append((time.monotonic() - t0, srv.rss_kib()))
                await asyncio.sleep(0.05)
            await asyncio.gather(*tasks, return_exceptions=True)

        prober = asyncio.ensure_future(probe())
        writers = []
        for i in range(0, args.readers, 100):
            writers += await asyncio.gather(*(
                stalled(srv.port, f"/api/media/serve/{media_id}", args.rcvbuf)
                for _ in range(min(100, args.readers - i))))
        while time.monotonic() - t0 < args.seconds:
            await asyncio.sleep(0.5)
            if args.verbose:
                import psutil
                print(f"t={time.monotonic() - t0:.1f} rss={srv.rss_kib() / 1024:.0f} MiB "
                      f"lat={lat[-1] * 1000 if lat else 0:.0f} ms "
                      f"cpu={psutil.Process(srv.pid).cpu_percent(0.1)}")
        stop.set()
        await prober
        stalled_rss = srv.rss_kib()
        hwm = srv.hwm_kib()
        peak = max(max(r for _, r in samples), hwm if hwm > hwm_idle else 0)
        for w in writers:
            w.close()
        await asyncio.sleep(3)
        after = srv.rss_kib()
        await asyncio.sleep(12)
        later = srv.rss_kib()
        lat.sort()
        p50 = statistics.median(lat) * 1000
        p99 = lat[max(0, int(len(lat) * 0.99) - 1)] * 1000
        print(f"readers={args.readers} size={args.size_mib} MiB rcvbuf={args.rcvbuf or 'default'} "
              f"idle={idle / 1024:.0f} MiB "
              f"stalled={stalled_rss / 1024:.0f} MiB (+{(stalled_rss - idle) / 1024:.0f}, "
              f"{(stalled_rss - idle) / args.readers:.0f} KiB/reader) "
              f"peak=+{(peak - idle) / 1024:.0f} MiB after 3 s={after / 1024:.0f} MiB "
              f"after 15 s={later / 1024:.0f} MiB "
              f"small GET p50={p50:.1f} ms p99={p99:.1f} ms max={lat[-1] * 1000:.0f} ms "
              f"n={len(lat)} (without the attack: p50={statistics.median(quiet) * 1000:.1f} ms)")
    finally:
        procs.cleanup()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--readers", type=int, default=1000)
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--rcvbuf", type=int, default=0)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                    help="a setting for the server (e.g. DB_POOL_MAX=20)")
    asyncio.run(main(ap.parse_args()))
