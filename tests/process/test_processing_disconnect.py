"""A client that goes away while its upload is processed stops the processing: a real
server process (``python run.py``, aiohttp's handler cancellation off) on loopback, the
scan bomb (50 s of CPU to decode) with a 120 s processing limit, and a client that
closes its connection once a worker is decoding. The worker must be killed long before
its limit, and nothing kept: for a plain upload, a URL import, and a tus completion
(whose upload stays, unlocked, for the next HEAD to complete it again).

A client that stays gets its answer: tests/test_processing_bounds.py (the same bomb
answered 422 through the server), tests/test_upload_http.py, tests/test_tus_*.py and
tests/test_import_url.py, all through the same code.
"""
from __future__ import annotations

import asyncio
import base64
import json
import uuid

import asyncpg
import psutil
import pytest
from aiohttp import web

from tests.bombs import jpeg_scan_bomb
from tests.dbutil import copy_of_template, create_api_key, drop_database, fetchval, new_message
from tests.media import exif_photo
from tests.procs import Processes, Server, until

UPLOAD = "/api/media/upload-production"
TUS = "/api/media/tus/"
KEY = ""   # an admin API key in the module's database, set by the dsn fixture
BOMB = jpeg_scan_bomb(4096, 3000)


@pytest.fixture(scope="module")
def dsn(pg_server_dsn, template_dsn):
    dsn = asyncio.run(copy_of_template(pg_server_dsn, template_dsn, "media_gone"))
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
            # Far beyond the bomb's 50 s: only the client's going away can stop it.
            "MEDIA_PROCESSING_TIMEOUT_SECONDS": "120",
            "MEDIA_PROCESS_CONCURRENCY": "1",
            "MEDIA_IMPORT_ALLOW_HTTP": "true",
            "MEDIA_IMPORT_ALLOW_PRIVATE": "true",
        })
    finally:
        procs.cleanup()


# -- helpers ----------------------------------------------------------------------------

def cpu_seconds(p: psutil.Process) -> float:
    try:
        t = p.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return t.user + t.system


def alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def children(srv: Server) -> list[psutil.Process]:
    """The server's worker processes (and the fork server they come from)."""
    return psutil.Process(srv.pid).children(recursive=True)


def cpu_now(srv: Server) -> dict[int, float]:
    return {p.pid: cpu_seconds(p) for p in children(srv)}


async def decoding(srv: Server, before: dict[int, float]) -> psutil.Process:
    """The worker decoding the bomb, once it has burnt half a second of CPU more than
    ``before`` (the fork server burnt some importing the decoders)."""
    found: list[psutil.Process] = []

    def one_burning() -> bool:
        # Alive only: the previous test's killed worker may linger as a zombie, whose
        # CPU time could not be read for the baseline.
        found[:] = [p for p in children(srv)
                    if alive(p) and cpu_seconds(p) - before.get(p.pid, 0.0) > 0.5]
        return len(found) == 1
    await until(one_burning, "a worker decoding the bomb", tries=1200)
    return found[0]


async def stopped(worker: psutil.Process) -> None:
    """The worker is killed (it would decode for 50 s more), not left to decode for
    nobody."""
    await until(lambda: not alive(worker), "the worker decoding for nobody killed")


async def send(srv: Server, head: str, body: bytes):
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(head.encode() + body)
    await writer.drain()
    return reader, writer


def request_head(method: str, path: str, length: int, **headers: str) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: t", f"Content-Length: {length}",
             f"Authorization: Bearer {KEY}"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


async def hang_up(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


async def read_status(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    line = await asyncio.wait_for(reader.readline(), 60)
    status = int(line.split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


async def count(dsn: str, sql: str, *args) -> int:
    return await fetchval(dsn, sql, *args)


async def audit_outcomes(dsn: str, message_id: int) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT outcome FROM media_audit_log WHERE message_id = $1",
                                message_id)
    finally:
        await conn.close()
    return [r["outcome"] for r in rows]


# -- the plain upload -------------------------------------------------------------------

async def test_an_upload_whose_client_hangs_up_is_not_processed_on(srv, dsn):
    message_id = await new_message(dsn)
    before = await count(dsn, "SELECT count(*) FROM media_files")
    head = request_head("POST", f"{UPLOAD}?message_id={message_id}&filename=b.jpg",
                        len(BOMB), Content_Type="image/jpeg")
    cpu = cpu_now(srv)
    _, writer = await send(srv, head, BOMB)
    worker = await decoding(srv, cpu)
    await hang_up(writer)
    await stopped(worker)
    assert await count(dsn, "SELECT count(*) FROM media_files") == before
    await until_audited(dsn, message_id, "client_gone")
    # aiohttp logs no access line for it; the watch does, and nothing logs a stack.
    assert f"client gone: POST {UPLOAD} stopped" in srv.stderr()
    assert "Traceback" not in srv.stderr()
    # The server goes on serving, and a client that stays gets its answer.
    photo = exif_photo()
    reader, writer = await send(srv, request_head(
        "POST", f"{UPLOAD}?message_id={message_id}&filename=p.jpg", len(photo),
        Content_Type="image/jpeg"), photo)
    status, _ = await read_status(reader)
    await hang_up(writer)
    assert status == 201
    assert await count(dsn, "SELECT count(*) FROM media_files WHERE message_id = $1",
                       message_id) == 1


async def until_audited(dsn: str, message_id: int, outcome: str) -> None:
    for _ in range(200):
        if outcome in await audit_outcomes(dsn, message_id):
            return
        await asyncio.sleep(0.025)
    pytest.fail(f"no audit row {outcome!r} for message {message_id}: "
                f"{await audit_outcomes(dsn, message_id)}")


async def test_a_multipart_upload_whose_client_hangs_up_is_not_processed_on(srv, dsn):
    message_id = await new_message(dsn)
    before = await count(dsn, "SELECT count(*) FROM media_files")
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"message_id\"\r\n\r\n"
            f"{message_id}\r\n--{boundary}\r\nContent-Disposition: form-data; "
            f"name=\"file\"; filename=\"b.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
            ).encode() + BOMB + f"\r\n--{boundary}--\r\n".encode()
    cpu = cpu_now(srv)
    _, writer = await send(srv, request_head(
        "POST", UPLOAD, len(body),
        Content_Type=f"multipart/form-data; boundary={boundary}"), body)
    worker = await decoding(srv, cpu)
    await hang_up(writer)
    await stopped(worker)
    assert await count(dsn, "SELECT count(*) FROM media_files") == before


# -- a URL import -----------------------------------------------------------------------

async def test_an_import_whose_client_hangs_up_is_not_processed_on(srv, dsn,
                                                                   aiohttp_server):
    async def bomb(request: web.Request) -> web.Response:
        return web.Response(body=BOMB, content_type="image/jpeg")
    app = web.Application()
    app.router.add_get("/b.jpg", bomb)
    origin = await aiohttp_server(app, host="127.0.0.1")
    message_id = await new_message(dsn)
    before = await count(dsn, "SELECT count(*) FROM media_files")
    body = json.dumps({"message_id": message_id,
                       "url": f"http://127.0.0.1:{origin.port}/b.jpg"}).encode()
    cpu = cpu_now(srv)
    _, writer = await send(srv, request_head("POST", "/api/media/import-url", len(body),
                                             Content_Type="application/json"), body)
    worker = await decoding(srv, cpu)
    await hang_up(writer)
    await stopped(worker)
    assert await count(dsn, "SELECT count(*) FROM media_files") == before
    await until_audited(dsn, message_id, "client_gone")


# -- a tus completion -------------------------------------------------------------------

def tus_meta(**kw) -> str:
    return ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}"
                    for k, v in kw.items())


async def test_a_tus_completion_whose_client_hangs_up_stops_and_can_run_again(srv, dsn):
    # See server/tus/handler.py's module text: the upload keeps its bytes and gives its
    # lease back, so the next HEAD runs the completion again, and a DELETE is not
    # kept waiting behind processing nobody waits for.
    message_id = await new_message(dsn)
    reader, writer = await send(srv, request_head(
        "POST", TUS, 0, Tus_Resumable="1.0.0", Upload_Length=str(len(BOMB)),
        Upload_Metadata=tus_meta(message_id=message_id, filename="b.jpg")), b"")
    status, headers = await read_status(reader)
    await hang_up(writer)
    assert status == 201
    path = TUS + headers["location"].rsplit("/", 1)[1]
    upload_id = uuid.UUID(path.rsplit("/", 1)[1])
    before = await count(dsn, "SELECT count(*) FROM media_files")

    # The PATCH that brings the last byte completes the upload; its client hangs up.
    cpu = cpu_now(srv)
    _, writer = await send(srv, request_head(
        "PATCH", path, len(BOMB), Tus_Resumable="1.0.0", Upload_Offset="0",
        Content_Type="application/offset+octet-stream"), BOMB)
    worker = await decoding(srv, cpu)
    await hang_up(writer)
    await stopped(worker)
    await until_unlocked(dsn, upload_id)
    assert await count(dsn, "SELECT count(*) FROM media_files") == before
    assert await count(dsn, "SELECT count(*) FROM media_files WHERE message_id = $1 "
                            "AND upload_state = 'complete'", message_id) == 0

    # The next HEAD runs the completion again (and its client hangs up too).
    cpu = cpu_now(srv)
    _, writer = await send(srv, request_head("HEAD", path, 0, Tus_Resumable="1.0.0"), b"")
    worker = await decoding(srv, cpu)
    await hang_up(writer)
    await stopped(worker)
    await until_unlocked(dsn, upload_id)
    assert await count(dsn, "SELECT count(*) FROM media_files") == before

    # Nothing holds the upload: its creator may terminate it at once.
    reader, writer = await send(srv, request_head("DELETE", path, 0,
                                                  Tus_Resumable="1.0.0"), b"")
    status, _ = await read_status(reader)
    await hang_up(writer)
    assert status == 204
    assert await count(dsn, "SELECT count(*) FROM tus_uploads WHERE id = $1",
                       upload_id) == 0
    assert f"client gone: HEAD {path} stopped" in srv.stderr()
    assert "Traceback" not in srv.stderr()


async def until_unlocked(dsn: str, upload_id: uuid.UUID) -> None:
    sql = "SELECT count(*) FROM tus_uploads WHERE id = $1 AND lock_id IS NULL"
    for _ in range(200):
        if await count(dsn, sql, upload_id) == 1:
            return
        await asyncio.sleep(0.025)
    pytest.fail("the upload's lease was not given back")
