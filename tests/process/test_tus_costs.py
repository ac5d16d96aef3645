"""What a tus PATCH costs the database and the server, against a real server process:
WAL and table bytes in proportion to the body (a checksummed PATCH once rewrote the
rest of its held body with every chunk: 36x the body in WAL), bounded memory."""
from __future__ import annotations

import base64
import hashlib
import os

import aiohttp
import pytest

from tests.dbutil import bearer, create_api_key, fetchval, new_message

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}
MIB = 1024 * 1024


def meta(**kw) -> str:
    return ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in kw.items())


async def wal_lsn(dsn: str) -> str:
    return str(await fetchval(dsn, "SELECT pg_current_wal_lsn()::text"))


async def wal_since(dsn: str, lsn: str) -> int:
    return int(await fetchval(dsn, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)",
                              lsn))


@pytest.mark.slow
async def test_patch_writes_wal_in_proportion_to_its_body(procs, db_dsn):
    size = 16 * MIB
    srv = procs.start({"DATABASE_URL": db_dsn, "MEDIA_PROCESSING": "false",
                       "MEDIA_MAX_UPLOAD_BYTES": str(4 * size)})
    key = await create_api_key(db_dsn, "write")
    message_id = await new_message(db_dsn)
    bound = 2 * size * 4 // 3          # twice the body's base64
    async with aiohttp.ClientSession(headers=bearer(key)) as http:
        async with http.post(f"{srv.url}/api/media/tus/", headers={
                **TUS, "Upload-Length": str(3 * size),
                "Upload-Metadata": meta(message_id=message_id, filename="big.bin")}) as r:
            assert r.status == 201, await r.text()
            path = "/api/media/tus/" + r.headers["Location"].rsplit("/", 1)[1]
        rss_before = srv.rss_kib()
        offset, figures = 0, {}
        # 1 byte first: every PATCH after it starts off a 3-byte group, with a tail.
        for name, n in (("plain, 1 byte", 1), ("checksummed", size), ("plain", size)):
            data = os.urandom(n)
            headers = {**TUS, **OCTET, "Upload-Offset": str(offset)}
            if name == "checksummed":
                digest = base64.b64encode(hashlib.sha1(data).digest()).decode()
                headers["Upload-Checksum"] = f"sha1 {digest}"
            lsn = await wal_lsn(db_dsn)
            async with http.patch(srv.url + path, data=data, headers=headers) as r:
                assert r.status == 204, await r.text()
                offset += n
                assert r.headers["Upload-Offset"] == str(offset)
            figures[name] = await wal_since(db_dsn, lsn)
        growth_mib = (srv.hwm_kib() - rss_before) / 1024
        table = await fetchval(db_dsn, "SELECT pg_total_relation_size('tus_uploads')")
    print(f"\n16 MiB PATCH, WAL: checksummed {figures['checksummed'] / MIB:.1f} MiB, "
          f"plain {figures['plain'] / MIB:.1f} MiB (bound {bound / MIB:.1f} MiB); "
          f"tus_uploads {table / 1024:.0f} KiB; server peak RSS growth {growth_mib:.1f} MiB")
    assert figures["checksummed"] <= bound
    assert figures["plain"] <= bound
    assert table < MIB
    assert growth_mib < size / MIB     # never the whole body in memory


@pytest.mark.slow
@pytest.mark.parametrize("checksummed", [False, True])
async def test_sigterm_stops_a_patch_in_progress(procs, db_dsn, checksummed):
    """A PATCH whose client is still sending does not hold up a SIGTERM: the server
    exits long before its shutdown timeout (60 s here), the PATCH is told 503, and what
    it brought is kept (plain) or dropped (checksummed)."""
    import asyncio
    import signal
    total, sent = 64 * MIB, 8 * MIB
    srv = procs.start({"DATABASE_URL": db_dsn, "MEDIA_PROCESSING": "false",
                       "MEDIA_MAX_UPLOAD_BYTES": str(2 * total),
                       "MEDIA_SHUTDOWN_TIMEOUT_SECONDS": "60"})
    key = await create_api_key(db_dsn, "write")
    message_id = await new_message(db_dsn)
    async with aiohttp.ClientSession(headers=bearer(key)) as http:
        async with http.post(f"{srv.url}/api/media/tus/", headers={
                **TUS, "Upload-Length": str(total),
                "Upload-Metadata": meta(message_id=message_id, filename="big.bin")}) as r:
            path = "/api/media/tus/" + r.headers["Location"].rsplit("/", 1)[1]
    extra = "Upload-Checksum: sha1 " + base64.b64encode(b"\0" * 20).decode() + "\r\n" \
        if checksummed else ""
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write((f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
                  f"Authorization: Bearer {key}\r\nTus-Resumable: 1.0.0\r\n"
                  f"Content-Type: application/offset+octet-stream\r\n{extra}"
                  f"Upload-Offset: 0\r\nContent-Length: {total}\r\n\r\n").encode()
                 + os.urandom(sent))
    await writer.drain()
    stored = "SELECT coalesce(max(seq) + 1, 0) FROM content_chunks"
    for _ in range(200):   # until most of what was sent is stored
        if await fetchval(db_dsn, stored) * 261_120 >= sent // 2:
            break
        await asyncio.sleep(0.05)
    srv.proc.send_signal(signal.SIGTERM)
    answer = await asyncio.wait_for(reader.read(), 30)   # the client still owes 56 MiB
    writer.close()
    assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
    assert await asyncio.to_thread(srv.proc.wait, 30) == 0
    size, count = await fetchval(
        db_dsn, "SELECT array[f.file_size + octet_length(t.tail), f.chunk_count] "
                "FROM tus_uploads t JOIN media_files f ON f.id = t.media_id")
    chunks = await fetchval(db_dsn, "SELECT count(*) FROM content_chunks")
    if checksummed:
        assert (size, count, chunks) == (0, 0, 0)
    else:
        assert sent // 2 <= size <= sent and chunks == count
