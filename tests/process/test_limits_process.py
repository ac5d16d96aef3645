"""Issue 6's attacks replayed against a real server process (``python run.py``) on
loopback, each bounded in connections and seconds, with what must hold after.

One server for the module, with small limits so each attack trips them quickly:
3 upload slots, a minimum pace of 1 KiB/s over 2 s windows, a 3 s send timeout,
4 chunk reads per multi-range request.
"""
from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from tests.dbutil import (
    copy_of_template,
    create_api_key,
    drop_database,
    fetchval,
    new_message,
)
from tests.media import jpeg_bytes
from tests.procs import Processes, Server

UPLOAD = "/api/media/upload-production"
SLOTS = 3
WINDOW = 2
SEND_TIMEOUT = 3
MAX_RANGE_CHUNKS = 4
CHUNK = 261_120
KEY = ""   # an admin API key in the module's database, set by the dsn fixture


@pytest.fixture(scope="module")
def dsn(pg_server_dsn, template_dsn):
    dsn = asyncio.run(copy_of_template(pg_server_dsn, template_dsn, "media_limits"))
    global KEY
    KEY = asyncio.run(create_api_key(dsn, "admin"))
    yield dsn
    asyncio.run(drop_database(pg_server_dsn, dsn))


@pytest.fixture(scope="module")
def srv(dsn):
    procs = Processes()
    try:
        yield procs.start({
            "DATABASE_URL": dsn,
            "MEDIA_MAX_CONCURRENT_UPLOADS": str(SLOTS),
            "MEDIA_UPLOAD_MIN_RATE_BYTES_PER_SECOND": "1024",
            "MEDIA_UPLOAD_RATE_WINDOW_SECONDS": str(WINDOW),
            "MEDIA_SEND_TIMEOUT_SECONDS": str(SEND_TIMEOUT),
            "MEDIA_MAX_RANGE_CHUNKS": str(MAX_RANGE_CHUNKS),
        })
    finally:
        procs.cleanup()


async def rows_of(dsn: str, state: str) -> int:
    return await fetchval(dsn, "SELECT count(*) FROM media_files WHERE upload_state = $1",
                          state)


async def open_raw(srv: Server, head: str, body: bytes = b""):
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(head.encode() + body)
    await writer.drain()
    return reader, writer


def upload_head(message_id: int, length: int, **extra: str) -> str:
    lines = [f"POST {UPLOAD}?message_id={message_id}&filename=a.jpg HTTP/1.1",
             "Host: t", "Content-Type: image/jpeg", f"Content-Length: {length}",
             f"Authorization: Bearer {KEY}"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in extra.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


async def read_response(reader: asyncio.StreamReader, timeout: float) -> tuple[int, dict, bytes]:
    """Status, headers and body of one response (Content-Length bodies only)."""
    async def read():
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v for k, _, v in (l.partition(": ") for l in lines[1:] if l)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body
    return await asyncio.wait_for(read(), timeout)


async def upload(srv: Server, message_id: int, data: bytes) -> dict:
    reader, writer = await open_raw(srv, upload_head(message_id, len(data)), data)
    try:
        status, _, body = await read_response(reader, 60)
    finally:
        writer.close()
    assert status == 201, body
    return json.loads(body)


async def get(srv: Server, path: str, headers: dict[str, str] | None = None,
              timeout: float = 30) -> tuple[int, dict, bytes]:
    head = (f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            f"Authorization: Bearer {KEY}\r\n") + "".join(
        f"{k}: {v}\r\n" for k, v in (headers or {}).items()) + "\r\n"
    reader, writer = await open_raw(srv, head)
    try:
        return await read_response(reader, timeout)
    finally:
        writer.close()


# -- compressed bodies ---------------------------------------------------------------

@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "identity, gzip", "GZIP"])
async def test_coded_upload_is_refused_before_its_body(srv, dsn, coding):
    message_id = await new_message(dsn)
    before = await fetchval(dsn, "SELECT count(*) FROM media_files")
    # Announce 100 MB and send none of it: the answer must come without the body.
    reader, writer = await open_raw(
        srv, upload_head(message_id, 100_000_000, Content_Encoding=coding))
    try:
        status, headers, body = await read_response(reader, 10)
    finally:
        writer.close()
    assert status == 415
    assert json.loads(body)["error"] == "unsupported_content_encoding"
    assert await fetchval(dsn, "SELECT count(*) FROM media_files") == before


async def test_identity_coding_is_accepted(srv, dsn):
    message_id = await new_message(dsn)
    data = jpeg_bytes(20_000)
    reader, writer = await open_raw(
        srv, upload_head(message_id, len(data), Content_Encoding="identity"), data)
    try:
        status, _, body = await read_response(reader, 30)
    finally:
        writer.close()
    assert status == 201, body


# -- upload slots and trickles -------------------------------------------------------

async def trickle(writer: asyncio.StreamWriter, every: float, piece: bytes, until: float):
    """Send ``piece`` every ``every`` seconds until ``until`` (or the server closes)."""
    try:
        while time.monotonic() < until:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(every)
    except ConnectionError:
        pass


async def test_trickling_uploads_are_cut_with_408_and_removed(srv, dsn):
    """Ten uploads trickle a byte every half second (after a first 10 KB): the three
    that get a slot are cut with 408 within a window or two, the rest are told 503 at
    once, a normal request is served meanwhile, and no row is left behind."""
    message_id = await new_message(dsn)
    data = jpeg_bytes(1_000_000)
    conns = [await open_raw(srv, upload_head(message_id, len(data)), data[:10_000])
             for _ in range(10)]
    stop = time.monotonic() + 6 * WINDOW
    tricklers = [asyncio.ensure_future(trickle(w, 0.5, b"x", stop)) for _, w in conns]
    try:
        status, _, _ = await get(srv, "/api/messages/%d/media" % message_id, timeout=5)
        assert status == 200   # served during the trickle
        answers = await asyncio.gather(*(read_response(r, 6 * WINDOW) for r, _ in conns))
    finally:
        for t in tricklers:
            t.cancel()
        for _, w in conns:
            w.close()
    statuses = sorted(s for s, _, _ in answers)
    assert statuses == [408] * SLOTS + [503] * (10 - SLOTS), statuses
    for status, headers, body in answers:
        code = json.loads(body)["error"]
        if status == 408:
            assert code == "upload_too_slow"
        else:
            assert code == "too_many_uploads" and headers["retry-after"].isdigit()
    for _ in range(50):   # the cut uploads are removed as the handlers end
        if await rows_of(dsn, "uploading") == 0:
            break
        await asyncio.sleep(0.1)
    assert await rows_of(dsn, "uploading") == 0


async def _holder(srv, head: str, first: bytes):
    """An upload that holds a slot: retried while the slots are still taken by the
    previous test's uploads, whose handlers may take a moment to end on a busy machine."""
    for _ in range(100):
        reader, writer = await open_raw(srv, head, first)
        try:
            await asyncio.wait_for(reader.read(1), 1.0)   # an answer now is a refusal
        except asyncio.TimeoutError:
            return reader, writer                          # no answer: it holds a slot
        writer.close()
        await asyncio.sleep(0.2)
    raise AssertionError("no upload slot came free")


async def test_slots_free_up_when_uploads_end(srv, dsn):
    message_id = await new_message(dsn)
    data = jpeg_bytes(200_000)
    # Fill every slot with uploads that keep a fair pace, then check the next is
    # refused, end them, and check the next is accepted.
    # The holders announce far more than they will send in the test's time, so none
    # finishes (and frees its slot) while the probes run, however slow the machine.
    conns = [await _holder(srv, upload_head(message_id, 50 * len(data)), data[:10_000])
             for _ in range(SLOTS)]
    stop = time.monotonic() + 30
    tricklers = [asyncio.ensure_future(trickle(w, 0.2, b"y" * 2048, stop)) for _, w in conns]
    try:
        for _ in range(50):   # until the server has taken the three slots
            reader, writer = await open_raw(srv, upload_head(message_id, len(data)),
                                            data[:10_000])
            status, headers, body = await read_response(reader, 10)
            writer.close()
            if status == 503:
                break
            # A probe that got a slot (the holders not all in yet) is cut by the pace
            # (408) on a loaded machine: try again.
            await asyncio.sleep(0.1)
        assert status == 503 and headers["retry-after"].isdigit()
        assert json.loads(body)["error"] == "too_many_uploads"
        # A client that waits for 100 Continue is told before it sends anything.
        reader, writer = await open_raw(
            srv, upload_head(message_id, len(data), Expect="100-continue"))
        status, headers, body = await read_response(reader, 10)
        writer.close()
        assert status == 503 and headers["retry-after"] == "5"
        assert json.loads(body)["error"] == "too_many_uploads"
    finally:
        for t in tricklers:
            t.cancel()
        for _, w in conns:
            w.close()
    for _ in range(100):
        reader, writer = await open_raw(srv, upload_head(message_id, len(data)), data)
        status, _, body = await read_response(reader, 30)
        writer.close()
        if status == 201:
            break
        await asyncio.sleep(0.1)
    assert status == 201, body


# -- aiohttp's own 400s -----------------------------------------------------------------

MARKER = "ZQX<script>7"
MALFORMED = [
    f"GET / HTTP/1.1\r\nHost: t\r\n{MARKER}\r\n\r\n".encode(),           # not a header
    f"{MARKER} / HTTP/1.1\r\n\r\n".encode(),                             # bad method
    f"GET /{MARKER} HTTP/9.9\r\n\r\n".encode(),                          # bad version
    b"GET /" + b"a" * 20_000 + MARKER.encode() + b" HTTP/1.1\r\n\r\n",   # line too long
    f"GET / HTTP/1.1\r\nHost: t\r\nX-A: {'b' * 20_000}{MARKER}\r\n\r\n".encode(),
    b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz" + MARKER.encode() + b"\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40)),  # TLS hello
]


async def test_malformed_requests_get_our_json_400_and_one_quiet_line(srv):
    before = len(srv.stderr().splitlines())
    rounds = 25
    for _ in range(rounds):
        for raw in MALFORMED:
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(raw)
            await writer.drain()
            try:
                response = await asyncio.wait_for(reader.read(), 10)
            finally:
                writer.close()
            head, _, body = response.partition(b"\r\n\r\n")
            assert head.split()[1] == b"400", response[:200]
            assert b"\r\nServer: media-store\r\n" in head + b"\r\n"
            assert b"aiohttp" not in response and b"Python" not in response
            assert MARKER.encode() not in response
            assert json.loads(body)["error"] == "bad_request"
    await asyncio.sleep(0.5)
    log = srv.stderr().splitlines()[before:]
    assert "Traceback" not in "\n".join(log), "\n".join(log)[-3000:]
    assert not [line for line in log if " ERROR " in line or " WARNING " in line]
    # At most one line per request (the access log is written in batches, so a line
    # of an earlier request may land here too: count only the 400s).
    assert len([line for line in log if " 400 " in line]) <= rounds * len(MALFORMED)
    assert srv.proc.poll() is None


# -- multi-range amplification ----------------------------------------------------------

async def test_multi_range_beyond_the_chunk_bound_gets_the_whole_file(srv, dsn):
    data = jpeg_bytes(8 * CHUNK)
    media = await upload(srv, await new_message(dsn), data)
    url = media["url"]
    # One byte in each of 8 chunks: 8 chunk reads for 8 bytes -> ignored, 200.
    spread = "bytes=" + ",".join(f"{i * CHUNK + 7}-{i * CHUNK + 7}" for i in range(8))
    status, headers, body = await get(srv, url, {"Range": spread})
    assert status == 200 and body == data
    # Within the bound (3 chunks): a multipart 206 with the right bytes.
    few = "bytes=" + ",".join(f"{i * CHUNK + 7}-{i * CHUNK + 7}" for i in range(3))
    status, headers, body = await get(srv, url, {"Range": few})
    assert status == 206 and headers["content-type"].startswith("multipart/byteranges")
    for i in range(3):
        assert f"bytes {i * CHUNK + 7}-{i * CHUNK + 7}/{len(data)}".encode() in body
    # Many small ranges inside one chunk cost one read: still a 206.
    inside = "bytes=" + ",".join(f"{i * 1000}-{i * 1000 + 1}" for i in range(20))
    status, _, body = await get(srv, url, {"Range": inside})
    assert status == 206
    assert body.count(b"Content-Range: bytes ") == 20
    # A single range is never priced.
    status, _, body = await get(srv, url, {"Range": "bytes=100-"})
    assert status == 206 and body == data[100:]


# -- slow readers -----------------------------------------------------------------------

async def test_a_reader_that_stops_reading_is_cut_after_the_send_timeout(srv, dsn):
    data = jpeg_bytes(16 * 1024 * 1024)
    media = await upload(srv, await new_message(dsn), data)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", srv.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=8192)
    writer.write(f"GET {media['url']} HTTP/1.1\r\nHost: t\r\n"
                 f"Authorization: Bearer {KEY}\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(SEND_TIMEOUT + 3)   # read nothing: no progress at all
    got = 0
    try:
        async def drain():
            nonlocal got
            while chunk := await reader.read(1 << 16):
                got += len(chunk)
        await asyncio.wait_for(drain(), 20)   # what was queued, then the server's close
    except ConnectionError:
        pass
    finally:
        writer.close()
    assert got < len(data)
    status, _, body = await get(srv, media["url"])   # and the server is fine
    assert status == 200 and body == data


async def _paused_read(srv: Server, url: str, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    """A GET whose client reads a little, then nothing for longer than the stall grace
    (1 s; less than the send timeout), then the rest: the server lets go of what it
    held and must take up again exactly where it stopped."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", srv.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    writer.write((f"GET {url} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {KEY}\r\n"
                  "Connection: close\r\n" + "".join(f"{k}: {v}\r\n" for k, v in
                                                   headers.items()) + "\r\n").encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {k.lower(): v for k, _, v in (l.partition(": ") for l in lines[1:] if l)}
        length = int(hdrs["content-length"])
        body = await asyncio.wait_for(reader.readexactly(min(length, 50_000)), 30)
        await asyncio.sleep(SEND_TIMEOUT * 0.6)   # stalled, not cut
        body += await asyncio.wait_for(reader.readexactly(length - len(body)), 60)
        return int(lines[0].split()[1]), hdrs, body
    finally:
        writer.close()


async def test_readers_that_pause_get_every_byte(srv, dsn):
    """Twelve readers pause mid-response at once (more than the stream slots, so they
    also give slots up to each other): whole files and multipart ranges arrive exact."""
    data = jpeg_bytes(64 * CHUNK + 12_345)   # 16 MiB: more than the kernel buffers
    url = (await upload(srv, await new_message(dsn), data))["url"]
    parts = [(100, 40_000), (100_000, 4 * CHUNK - 1)]   # 4 chunk reads, the 2nd shared
    multi = {"Range": "bytes=" + ",".join(f"{a}-{b}" for a, b in parts)}
    answers = await asyncio.gather(*(_paused_read(srv, url, {} if i % 2 else multi)
                                     for i in range(12)))
    for i, (status, headers, body) in enumerate(answers):
        if i % 2:
            assert status == 200 and body == data
            continue
        assert status == 206 and headers["content-type"].startswith("multipart/byteranges")
        for a, b in parts:
            mark = f"Content-Range: bytes {a}-{b}/{len(data)}\r\n\r\n".encode()
            at = body.index(mark) + len(mark)
            assert body[at:at + b - a + 1] == data[a:b + 1]


async def test_expect_continue_uploads_are_refused_before_they_send(srv, dsn):
    message_id = await new_message(dsn)
    for extra, status, code in [({"Content_Encoding": "gzip"}, 415,
                                 "unsupported_content_encoding")]:
        reader, writer = await open_raw(
            srv, upload_head(message_id, 5_000_000, Expect="100-continue", **extra))
        try:
            got, headers, body = await read_response(reader, 10)
        finally:
            writer.close()
        assert got == status and json.loads(body)["error"] == code
