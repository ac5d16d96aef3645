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
