"""Memory per concurrent upload, against a real server (issue 6).

    python bench/bench_upload_memory.py --uploads 200

Starts ``python run.py`` on an embedded PostgreSQL in a temporary folder, opens N
uploads that each send --mib MiB and then pause (within the minimum pace), measures
the server's RSS above idle while they are all in progress, then lets them go.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.media import jpeg_bytes  # noqa: E402
from tests.procs import Processes, run_cli  # noqa: E402

AUTH = ""   # the Authorization header line, set once a key exists


async def held_upload(port: int, message_id: int, data: bytes, total: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"POST /api/media/upload-production?message_id={message_id} HTTP/1.1\r\n"
                  f"Host: b\r\n{AUTH}Content-Type: image/jpeg\r\nContent-Length: {total}\r\n\r\n"
                  ).encode())
    for i in range(0, len(data), 65536):
        writer.write(data[i:i + 65536])
        await writer.drain()
    return writer


async def main(args) -> None:
    procs = Processes()
    try:
        env = {"MEDIA_DATA_DIR": str(procs.data_dir()), "LOG_LEVEL": "WARNING",
               "MEDIA_MAX_CONCURRENT_UPLOADS": str(max(256, args.uploads))}
        message_id = int(run_cli(["create-message"], env).stdout.strip())
        global AUTH
        AUTH = f"Authorization: Bearer {run_cli(['keys', 'create', 'bench'], env).stdout.strip()}\r\n"
        srv = procs.start(env)
        await asyncio.sleep(1)
        idle = srv.rss_kib()
        data = jpeg_bytes(int(args.mib * 1024 * 1024) + 1000)   # not a chunk multiple
        writers = await asyncio.gather(*(held_upload(srv.port, message_id, data, 10 * len(data))
                                         for _ in range(args.uploads)))
        await asyncio.sleep(args.hold)
        held = srv.rss_kib()
        for w in writers:
            w.close()
        await asyncio.sleep(12)
        after = srv.rss_kib()
        print(f"uploads={args.uploads} each {args.mib} MiB then paused: idle={idle / 1024:.0f} MiB "
              f"held=+{(held - idle) / 1024:.0f} MiB ({(held - idle) / args.uploads:.0f} KiB "
              f"per upload) peak HWM=+{(srv.hwm_kib() - idle) / 1024:.0f} MiB "
              f"after={after / 1024:.0f} MiB")
    finally:
        procs.cleanup()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--uploads", type=int, default=200)
    ap.add_argument("--mib", type=float, default=1.1)
    ap.add_argument("--hold", type=float, default=8)
    asyncio.run(main(ap.parse_args()))
