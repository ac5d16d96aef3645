"""Stalled readers against a real server process (issue 6): what they cost and that
it is given back.

Scaled down for this shared machine: READERS connections ask for a 64 MiB file and
never read. The issue's budget, 256 MiB above idle for 1,000 stalled readers, is
256 KiB per reader; the full-size figures are measured by
bench/bench_stalled_readers.py and written in the README ("Limits and abuse").
"""
from __future__ import annotations

import asyncio
import json
import socket
import time

import psutil
import pytest

from tests.media import jpeg_bytes
from tests.procs import Processes, Server, run_cli

READERS = 150
BUDGET_KIB_PER_READER = 256
MIB = 1024 * 1024


@pytest.fixture
def procs():
    p = Processes()
    try:
        yield p
    finally:
        p.cleanup()


async def _upload(srv: Server, message_id: int, data: bytes, key: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write((f"POST /api/media/upload-production?message_id={message_id} HTTP/1.1\r\n"
                  f"Host: t\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n"
                  f"Authorization: Bearer {key}\r\nConnection: close\r\n\r\n").encode() + data)
    await writer.drain()
    resp = await asyncio.wait_for(reader.read(), 120)
    writer.close()
    assert resp.startswith(b"HTTP/1.1 201"), resp[:300]
    return json.loads(resp.partition(b"\r\n\r\n")[2])["url"]


async def _stalled_reader(port: int, path: str, key: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    sock.send(f"GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n\r\n"
              .encode())
    return sock


def _get_status(srv: Server, path: str) -> int:
    return srv.get(path, timeout=30)[0]


async def _settled_rss(srv: Server, timeout: float) -> int:
    """RSS once the server is quiet (under 5 % of a CPU for a second: every reader
    has stalled) and its RSS stopped moving (within 1 MiB over that second), in KiB."""
    proc = psutil.Process(srv.pid)
    deadline = time.monotonic() + timeout
    last = srv.rss_kib()
    while time.monotonic() < deadline:
        busy = await asyncio.to_thread(proc.cpu_percent, 1.0)
        now = srv.rss_kib()
        if busy < 5 and abs(now - last) < 1024:
            return now
        last = now
    return srv.rss_kib()


@pytest.mark.slow
async def test_stalled_readers_cost_a_bounded_amount_given_back_when_they_go(procs):
    data_dir = procs.data_dir()
    env = {"MEDIA_DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING",
           # Long enough that the readers are still there when measured.
           "MEDIA_SEND_TIMEOUT_SECONDS": "300"}
    message_id = int(run_cli(["create-message"], env).stdout.strip())
    key = run_cli(["keys", "create", "backend"], env).stdout.strip()
    srv = procs.start(env)
    path = await _upload(srv, message_id, jpeg_bytes(64 * MIB), key)
    idle = await _settled_rss(srv, 30)

    socks = [await _stalled_reader(srv.port, path, key) for _ in range(READERS)]
    try:
        stalled = await _settled_rss(srv, 90)
        # A normal request is still served while they hang on.
        status = await asyncio.to_thread(_get_status, srv, "/readyz")
        assert status == 200
    finally:
        for s in socks:
            s.close()
    cost = stalled - idle
    print(f"\n{READERS} stalled readers: idle {idle / 1024:.0f} MiB, "
          f"stalled +{cost / 1024:.0f} MiB ({cost / READERS:.0f} KiB each)")
    assert cost < READERS * BUDGET_KIB_PER_READER

    # Given back once they have gone (the trimmer runs every 10 s).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        await asyncio.sleep(2)
        after = srv.rss_kib()
        if after - idle < max(16 * 1024, cost // 4):
            break
    print(f"after they went: {after / 1024:.0f} MiB")
    assert after - idle < max(16 * 1024, cost // 4)
    assert srv.proc.poll() is None
