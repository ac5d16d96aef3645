"""The real server as a separate process (``python run.py``): the embedded PostgreSQL's
life across signals (a second one included) and crashes, memory while a 1 GiB body
streams in, slow clients against a small pool, clients that vanish mid-upload, and a
SIGTERM that a stalled client cannot hold up.

The 1 GiB and slow-client tests print what they measured (see them with ``-s``); timings
are reported, never asserted."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import random
import signal
import socket
import struct
import subprocess
import time
import urllib.request

import aiohttp
import psutil
import pytest

from tests.dbutil import bearer, create_api_key, fetchval, new_message
from tests.media import jpeg_bytes
from tests.procs import Server, postgres_processes, run_cli, wait_no_postgres

MIB = 1024 * 1024
UPLOAD = "/api/media/upload-production"


def _post_sync(srv: Server, message_id: int, data: bytes, ctype: str,
               name: str, key: str) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"{srv.url}{UPLOAD}?message_id={message_id}&filename={name}", data=data,
        method="POST", headers={"Content-Type": ctype, **bearer(key)})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read())


def _pids_file(data_dir) -> list[int]:
    return json.loads((data_dir / "pg" / ".handle_pids.json").read_text() or "[]")


def _postmaster_pids(data_dir) -> set[int]:
    return {p.pid for p in postgres_processes(data_dir)}


# -- the embedded PostgreSQL --------------------------------------------------------

def test_embedded_lifecycle_sigterm_sigint_and_data_kept(procs):
    data_dir = procs.data_dir()
    env = {"MEDIA_DATA_DIR": str(data_dir)}
    srv = procs.start(env)
    assert _postmaster_pids(data_dir), "no embedded postgres for the data folder"

    # An admin command joins the running embedded server and leaves it running.
    res = run_cli(["create-message"], env)
    assert res.returncode == 0, res.stderr
    message_id = int(res.stdout.strip())
    assert message_id >= 1
    res = run_cli(["keys", "create", "backend"], env)
    assert res.returncode == 0, res.stderr
    key = res.stdout.strip()
    data = jpeg_bytes(300_000, seed=3)
    status, body = _post_sync(srv, message_id, data, "image/jpeg", "photo.jpg", key)
    assert status == 201 and body["file_size"] == len(data)
    assert srv.get(body["url"]) == (200, data)   # signed: no key needed to read
    assert _pids_file(data_dir) == [srv.pid]   # the commands let go of their handles

    assert srv.signal_and_wait(signal.SIGTERM) == 0
    assert wait_no_postgres(data_dir) == []
    assert "Traceback" not in srv.stderr(), srv.stderr()[-3000:]
    assert _pids_file(data_dir) == []

    # Same folder again: the data is reused, the file is still served, and the URL
    # signed by the first run still verifies (the generated key is in the database).
    srv2 = procs.start(env)
    assert srv2.get(body["url"]) == (200, data)
    assert srv2.signal_and_wait(signal.SIGINT) == 0
    assert wait_no_postgres(data_dir) == []
    assert "Traceback" not in srv2.stderr()


def test_second_signal_during_stop_does_not_cut_it_short(procs):
    data_dir = procs.data_dir()
    srv = procs.start({"MEDIA_DATA_DIR": str(data_dir)})
    me = psutil.Process(srv.pid)
    srv.proc.send_signal(signal.SIGTERM)
    # Wait for the stop of the embedded server to be under way (its pg_ctl runs).
    deadline = time.monotonic() + 10
    while not _children_named(me, "pg_ctl"):
        assert srv.proc.poll() is None, "exited before stopping its PostgreSQL"
        assert time.monotonic() < deadline, "no pg_ctl stop seen"
        time.sleep(0.001)
    # An impatient operator, or a process manager, signals again.
    srv.proc.send_signal(signal.SIGTERM)
    srv.proc.send_signal(signal.SIGINT)
    assert srv.proc.wait(30) == 0        # not killed by the second signal
    assert wait_no_postgres(data_dir) == []
    assert _pids_file(data_dir) == []


def _children_named(proc: psutil.Process, name: str) -> list[psutil.Process]:
    found = []
    for child in proc.children():
        try:
            if any(name in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


@pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "zombie"])
def test_embedded_recovers_after_sigkill(procs, reaped):
    data_dir = procs.data_dir()
    env = {"MEDIA_DATA_DIR": str(data_dir)}
    srv = procs.start(env)
    postmaster = _postmaster_pids(data_dir)
    assert postmaster

    os.kill(srv.pid, signal.SIGKILL)
    if reaped:
        srv.proc.wait(10)
    else:
        # Not reaped: a zombie, which still "exists" for a plain pid check.
        _wait_zombie(srv.pid)
    # The known flaw: nothing stopped postgres, and the dead pid is still a holder
    # (checked after a pause in which a postgres that was going to stop would have).
    time.sleep(0.5)
    assert _postmaster_pids(data_dir) == postmaster
    assert _pids_file(data_dir) == [srv.pid]

    srv2 = procs.start(env)
    assert _postmaster_pids(data_dir) == postmaster   # joined, not restarted
    assert _pids_file(data_dir) == [srv2.pid]         # the dead holder was dropped
    assert "dropping dead holder pids" in srv2.stderr()
    status, _ = srv2.get("/readyz")
    assert status == 200

    assert srv2.signal_and_wait(signal.SIGTERM) == 0
    assert wait_no_postgres(data_dir) == []
    assert _pids_file(data_dir) == []


def test_drop_dead_pids_keeps_only_live_holders(tmp_path):
    from server.cli.embedded_pg import PIDS_FILE, drop_dead_pids
    # A live holder older than the list: the oldest of this process, its parent, init.
    holder = min((psutil.Process(p) for p in {os.getpid(), os.getppid(), 1}),
                 key=lambda p: p.create_time())
    # The newcomer must start well after the holder (start times are only precise to
    # about a second), which takes a short wait only when run right after boot.
    time.sleep(max(0.0, holder.create_time() + 4 - time.time()))
    zombie = subprocess.Popen(["sleep", "60"])
    newcomer = subprocess.Popen(["sleep", "60"])
    try:
        zombie.kill()
        _wait_zombie(zombie.pid)
        gone = subprocess.Popen(["true"])
        gone.wait()
        path = tmp_path / PIDS_FILE
        # A holder, a zombie, a pid nobody has, and a process started after the list
        # was last written (a reused pid).
        path.write_text(json.dumps([holder.pid, zombie.pid, gone.pid, newcomer.pid]))
        written = psutil.Process(newcomer.pid).create_time() - 3
        os.utime(path, (written, written))
        dropped = drop_dead_pids(tmp_path)
        assert sorted(dropped) == sorted([zombie.pid, gone.pid, newcomer.pid])
        assert json.loads(path.read_text()) == [holder.pid]
        # Nothing dead: the file is left alone.
        assert drop_dead_pids(tmp_path) == []
        assert json.loads(path.read_text()) == [holder.pid]
        assert drop_dead_pids(tmp_path / "missing") == []
    finally:
        for p in (zombie, newcomer):
            p.kill()
            p.wait()


def _wait_zombie(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "process did not die"
        time.sleep(0.02)


# -- memory: a 1 GiB body streamed through a server process ----------------------------

def tiny_mp4() -> bytes:
    """A real (tiny) MP4 made with PyAV: the start of a file the server accepts as video."""
    import av
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame(32, 32, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([i * 40]) * plane.buffer_size)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


class BigFile:
    """A ``size``-byte file: a real MP4's bytes, then pseudo-random filler in 1 MiB
    blocks (each block's first 8 bytes are its index, so no two blocks are alike).
    Any slice can be recomputed without keeping the file."""

    BLOCK = MIB

    def __init__(self, size: int, seed: int = 7):
        self.head = tiny_mp4()
        self.size = size
        self._base = random.Random(seed).randbytes(self.BLOCK)

    def _block(self, i: int) -> bytes:
        return struct.pack(">Q", i) + self._base[8:]

    def slice(self, start: int, stop: int) -> bytes:
        out = bytearray()
        pos = start
        while pos < stop:
            if pos < len(self.head):
                piece = self.head[pos:stop]
            else:
                i, off = divmod(pos - len(self.head), self.BLOCK)
                piece = self._block(i)[off:off + stop - pos]
            out += piece
            pos += len(piece)
        return bytes(out)

    def pieces(self):
        """The whole file, in order."""
        yield self.head
        remaining = self.size - len(self.head)
        i = 0
        while remaining > 0:
            block = self._block(i)[:remaining]
            remaining -= len(block)
            i += 1
            yield block


@pytest.mark.slow
async def test_1gib_upload_memory_stays_bounded(procs, db_dsn):
    size = 1024 * MIB
    srv = procs.start({"DATABASE_URL": db_dsn, "MEDIA_MAX_UPLOAD_BYTES": str(2**31)})
    message_id = await new_message(db_dsn)
    key = await create_api_key(db_dsn, "write")
    big = BigFile(size)
    assert big.slice(0, 12)[4:12] == b"ftypisom"
    sha, sent = hashlib.sha256(), 0

    async def body():
        nonlocal sent
        for piece in big.pieces():
            sha.update(piece)
            sent += len(piece)
            yield piece

    timeout = aiohttp.ClientTimeout(total=900)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        rss_before = srv.rss_kib()
        started = time.monotonic()
        async with session.post(
                f"{srv.url}{UPLOAD}?message_id={message_id}&filename=big.mp4", data=body(),
                headers={"Content-Type": "video/mp4", "Content-Length": str(size),
                         **bearer(key)}) as r:
            text = await r.text()
            status = r.status
        elapsed = time.monotonic() - started
        hwm_after = srv.hwm_kib()
        growth_mib = (hwm_after - rss_before) / 1024
        print(f"\n1 GiB upload: {elapsed:.1f} s ({size / MIB / elapsed:.0f} MiB/s); "
              f"server RSS before {rss_before / 1024:.1f} MiB, peak after "
              f"{hwm_after / 1024:.1f} MiB, growth {growth_mib:.1f} MiB")

        assert status == 201, text
        meta = json.loads(text)
        assert sent == size
        assert meta["file_size"] == size
        assert meta["mime_type"] == "video/mp4" and meta["media_type"] == "video"
        assert meta["sha256"] == sha.hexdigest()
        assert growth_mib < 64

        # The very end of the file: the last chunk is a partial one; the range spans it
        # and the full chunk before it.
        start = size - 300_000
        async with session.get(f"{srv.url}{meta['url']}",
                               headers={"Range": f"bytes={start}-"}) as r:
            assert r.status == 206
            assert r.headers["Content-Range"] == f"bytes {start}-{size - 1}/{size}"
            tail = await r.read()
        assert tail == big.slice(start, size)
    assert await fetchval(db_dsn, "SELECT count(*) FROM media_files "
                                   "WHERE upload_state = 'uploading'") == 0


# -- slow clients and a small pool ----------------------------------------------------

async def test_200_slow_uploads_share_a_pool_of_10(procs, db_dsn):
    srv = procs.start({"DATABASE_URL": db_dsn, "DB_POOL_MAX": "10",
                       "DB_POOL_ACQUIRE_TIMEOUT": "5", "MEDIA_CHUNK_BYTES": "3072"})
    message_id = await new_message(db_dsn)
    key = await create_api_key(db_dsn, "write")
    n, piece, pieces = 200, 2048, 6
    files = [jpeg_bytes(piece * pieces, seed=i) for i in range(n)]
    assert len(set(files)) == n

    async def slow_body(data: bytes):
        for k in range(pieces):
            if k:
                await asyncio.sleep(0.5)
            yield data[k * piece:(k + 1) * piece]

    async def upload(session, i):
        async with session.post(f"{srv.url}{UPLOAD}?message_id={message_id}"
                                f"&filename=slow{i}.jpg", data=slow_body(files[i]),
                                headers={"Content-Type": "image/jpeg", **bearer(key)}) as r:
            return r.status, await r.json()

    connector = aiohttp.TCPConnector(limit=n + 50)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.monotonic()
        results = await asyncio.gather(*(upload(session, i) for i in range(n)))
        elapsed = time.monotonic() - started
        print(f"\n{n} slow uploads ({pieces} x {piece} B, 0.5 s apart): {elapsed:.1f} s")
        assert [s for s, _ in results] == [201] * n, [b for s, b in results if s != 201][:3]
        assert [b["file_size"] for _, b in results] == [len(f) for f in files]

        async def read_back(body):
            async with session.get(srv.url + body["url"]) as r:
                return r.status, await r.read()

        got = await asyncio.gather(*(read_back(b) for _, b in results))
    assert [s for s, _ in got] == [200] * n
    assert [d for _, d in got] == files
    assert await fetchval(db_dsn, "SELECT count(*) FROM media_files "
                                   "WHERE upload_state = 'uploading'") == 0
    assert await fetchval(db_dsn, "SELECT count(*) FROM media_files "
                                   "WHERE upload_state = 'complete'") == n
    assert await fetchval(db_dsn, "SELECT count(*) FROM content_chunks WHERE content_id IN "
                                   "(SELECT content_id FROM media_files)") == n * 4


# -- a client that vanishes mid-body --------------------------------------------------

async def _poll(dsn: str, sql: str, want, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while True:
        got = await fetchval(dsn, sql)
        if want(got) or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.1)


def _stalled_upload(srv: Server, message_id: int, announced: int, sent: bytes,
                    key: str) -> socket.socket:
    """A raw upload that announces ``announced`` bytes, sends ``sent`` and stalls."""
    sock = socket.create_connection(("127.0.0.1", srv.port))
    sock.sendall(
        (f"POST {UPLOAD}?message_id={message_id}&filename=cut.mp4 HTTP/1.1\r\n"
         f"Host: 127.0.0.1:{srv.port}\r\nContent-Type: video/mp4\r\n"
         f"Authorization: Bearer {key}\r\n"
         f"Content-Length: {announced}\r\n\r\n").encode() + sent)
    return sock


async def test_sigterm_does_not_wait_for_a_stalled_upload(procs, db_dsn):
    srv = procs.start({"DATABASE_URL": db_dsn, "MEDIA_SHUTDOWN_TIMEOUT_SECONDS": "1"})
    message_id = await new_message(db_dsn)
    key = await create_api_key(db_dsn, "write")
    sock = _stalled_upload(srv, message_id, 100 * MIB, BigFile(2 * MIB).slice(0, 2 * MIB), key)
    try:
        assert await _poll(db_dsn, "SELECT count(*) FROM content_chunks", lambda c: c >= 4) >= 4
        srv.proc.send_signal(signal.SIGTERM)
        # aiohttp's own default would wait 60 s for the stalled client; the setting says 1.
        assert srv.proc.wait(20) == 0
    finally:
        sock.close()
    # The cut upload was aborted on the way out, not left for the janitor.
    assert await fetchval(db_dsn, "SELECT count(*) FROM media_files") == 0
    assert await fetchval(db_dsn, "SELECT count(*) FROM content_chunks") == 0
    assert "Traceback" not in srv.stderr(), srv.stderr()[-3000:]


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_client_vanishing_mid_body_leaves_nothing(procs, db_dsn, how):
    srv = procs.start({"DATABASE_URL": db_dsn})
    message_id = await new_message(db_dsn)
    key = await create_api_key(db_dsn, "write")
    announced = 100 * MIB
    head = BigFile(4 * MIB).slice(0, 4 * MIB)
    sock = _stalled_upload(srv, message_id, announced, head, key)
    try:
        # The upload is under way: its row and some chunks are in the database.
        chunks = await _poll(db_dsn, "SELECT count(*) FROM content_chunks", lambda c: c >= 8)
        assert chunks >= 8
        assert await fetchval(db_dsn, "SELECT count(*) FROM media_files "
                                       "WHERE upload_state = 'uploading'") == 1
        if how == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()

    assert await _poll(db_dsn, "SELECT count(*) FROM media_files", lambda c: c == 0) == 0
    assert await fetchval(db_dsn, "SELECT count(*) FROM content_chunks") == 0

    # And the server carries on.
    assert srv.get("/readyz")[0] == 200
    data = jpeg_bytes(50_000, seed=9)
    status, body = _post_sync(srv, message_id, data, "image/jpeg", "after.jpg", key)
    assert status == 201
    assert srv.get(body["url"]) == (200, data)
    assert srv.proc.poll() is None
    assert "Traceback" not in srv.stderr(), srv.stderr()[-3000:]


async def test_slow_concurrent_downloads_memory_stays_bounded(procs, db_dsn):
    # 40 players reading a 48 MiB video slowly, then giving up (a seek, a closed app).
    # The server holds a batch of chunks per reader, not the file: its memory must not
    # grow with the file size times the readers (that would be ~1.9 GiB here).
    size, readers, per_reader = 48 * MIB, 40, 4 * MIB
    srv = procs.start({"DATABASE_URL": db_dsn, "MEDIA_MAX_UPLOAD_BYTES": str(2**31)})
    big = BigFile(size)
    async with aiohttp.ClientSession() as session:
        url = await _upload_video(session, srv, db_dsn, big)
        rss_before = srv.rss_kib()

        async def slow_player(i: int) -> bytes:
            start = (i * 7 * MIB) % (size - per_reader)
            got = bytearray()
            async with session.get(url, headers={"Range": f"bytes={start}-"}) as r:
                assert r.status == 206
                while len(got) < per_reader:
                    got += await r.content.read(64 * 1024)
                    await asyncio.sleep(0.01)
            return start, bytes(got[:per_reader])

        results = await asyncio.gather(*(slow_player(i) for i in range(readers)))
        growth_mib = (srv.hwm_kib() - rss_before) / 1024
        print(f"\n{readers} slow readers of a {size // MIB} MiB file: server peak RSS "
              f"growth {growth_mib:.1f} MiB")
        for start, got in results:
            assert got == big.slice(start, start + per_reader)
        assert growth_mib < 160
        # Abandoned responses are normal: the server carries on, no error logged.
        assert srv.get("/healthz")[0] == 200
    assert "Traceback" not in srv.stderr(), srv.stderr()[-3000:]


@pytest.mark.parametrize("workers", [None, "2"])
async def test_a_second_sigterm_does_not_cut_the_requests_in_flight(procs, db_dsn, workers):
    # A stop lets the requests in flight finish. A second SIGTERM (an operator, a process
    # manager; a worker gets one from the kernel for each thread of a supervisor killed
    # outright) once raised a second GracefulExit in the middle of that: the download
    # was cut and the worker died with a traceback.
    args = ("serve", "--workers", workers) if workers else ()
    srv = procs.start({"DATABASE_URL": db_dsn, "MEDIA_SHUTDOWN_TIMEOUT_SECONDS": "30",
                       "MEDIA_MAX_UPLOAD_BYTES": str(2**31)}, args)
    size = 24 * MIB
    big = BigFile(size)
    async with aiohttp.ClientSession() as session:
        url = await _upload_video(session, srv, db_dsn, big)
        async with session.get(url) as r:
            assert r.status == 200
            got = bytearray(await r.content.read(MIB))
            # Every process of the service hears both: the supervisor and its workers.
            targets = [srv.proc.pid] + [p.pid for p in psutil.Process(srv.pid).children()
                                        if p.name().startswith("python")]
            for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGINT):
                for pid in targets:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                await asyncio.sleep(0.3)
            while chunk := await r.content.read(256 * 1024):
                got += chunk
                await asyncio.sleep(0.005)
    assert len(got) == size
    assert bytes(got) == big.slice(0, size)
    assert srv.proc.wait(60) == 0
    assert "Traceback" not in srv.stderr(), srv.stderr()[-3000:]


async def _upload_video(session: aiohttp.ClientSession, srv: Server, db_dsn: str,
                        big: BigFile) -> str:
    """``big`` streamed up as a raw video to a new message; the URL of its bytes."""
    message_id = await new_message(db_dsn)
    key = await create_api_key(db_dsn, "write")

    async def body():
        for piece in big.pieces():
            yield piece

    async with session.post(f"{srv.url}{UPLOAD}?message_id={message_id}&filename=v.mp4",
                            data=body(),
                            headers={"Content-Type": "video/mp4", **bearer(key)}) as r:
        assert r.status == 201, await r.text()
        return srv.url + (await r.json())["url"]
