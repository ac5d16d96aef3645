"""Virus scanning with a real clamd (tests/clamd.py): clean content is stored, EICAR is
refused (422 infected, nothing kept, the signature in the audit row), on every way in;
clamd unreachable (a socket nobody listens on) or slow (a loopback server that accepts
and never answers) refuses uploads when failing closed and stores them unscanned when
failing open, for the scan worker to scan (and quarantine) once clamd is back; and
``media-store scan`` rescans what is stored."""
from __future__ import annotations

import asyncio
import base64

import pytest

from server.hygiene.clamd import parse_address
from server.settings import replace_settings
from server.hygiene.scanning import Scanner, scan_unscanned
from tests.clamd import EICAR, clamd  # noqa: F401  (the session fixture)
from tests.media import jpeg_bytes

UPLOAD = "/api/media/upload-production"
TUS = {"Tus-Resumable": "1.0.0"}


async def upload(client, message_id, data: bytes, ctype: str = "application/octet-stream"):
    return await client.post(UPLOAD, params={"message_id": str(message_id)}, data=data,
                             headers={"Content-Type": ctype})


async def counts(pool) -> dict:
    async with pool.acquire() as conn:   # test-only SQL: what the service kept
        return dict(await conn.fetchrow(
            "SELECT (SELECT count(*) FROM media_files) AS media, "
            "(SELECT count(*) FROM content_chunks) AS chunks, "
            "(SELECT count(*) FROM unscanned_contents) AS unscanned, "
            "(SELECT count(*) FROM quarantined_contents) AS quarantined"))


@pytest.fixture
def nobody(tmp_path) -> str:
    """A unix socket path nobody listens on."""
    return f"unix://{tmp_path / 'nobody.sock'}"


@pytest.fixture(params=["nobody", "silent"])
async def unavailable(request, tmp_path):
    """clamd unreachable (a socket nobody listens on), or slow (a loopback server that
    accepts, reads, and never answers)."""
    if request.param == "nobody":
        yield f"unix://{tmp_path / 'nobody.sock'}"
        return

    async def swallow(reader, writer):
        try:
            while await reader.read(65536):
                pass
        finally:
            writer.close()
    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    await server.wait_closed()


async def test_clean_content_is_stored(client_with, clamd, message_id, pool):
    c = await client_with(scan__clamd=clamd)
    data = jpeg_bytes(200_000)
    r = await upload(c, message_id, data, "image/jpeg")
    assert r.status == 201
    media_id = (await r.json())["id"]
    assert await (await c.get(f"/api/media/serve/{media_id}")).read() == data
    assert (await counts(pool))["unscanned"] == 0


async def test_eicar_is_refused_and_nothing_kept(client_with, clamd, message_id, pool):
    c = await client_with(scan__clamd=clamd)
    r = await upload(c, message_id, EICAR)
    assert r.status == 422
    body = await r.json()
    assert body["error"] == "infected" and body["signature"].startswith("eicar")
    assert await counts(pool) == {"media": 0, "chunks": 0, "unscanned": 0, "quarantined": 0}
    async with pool.acquire() as conn:
        outcome = await conn.fetchval("SELECT outcome FROM media_audit_log "
                                      "WHERE action = 'upload'")
    assert outcome == f"infected: {body['signature']}"


async def test_eicar_in_a_multipart_form(client_with, clamd, message_id, pool):
    c = await client_with(scan__clamd=clamd)
    import aiohttp
    form = aiohttp.FormData()
    form.add_field("message_id", str(message_id))
    form.add_field("file", EICAR, filename="eicar.txt", content_type="text/plain")
    r = await c.post(UPLOAD, data=form)
    assert r.status == 422 and (await r.json())["error"] == "infected"
    assert (await counts(pool))["media"] == 0


async def test_eicar_by_tus_is_refused_at_completion(client_with, clamd, message_id, pool):
    c = await client_with(scan__clamd=clamd)
    meta = f"message_id {base64.b64encode(str(message_id).encode()).decode()}"
    r = await c.post("/api/media/tus/", headers={
        **TUS, "Upload-Length": str(len(EICAR)), "Upload-Metadata": meta})
    assert r.status == 201
    url = "/api/media/tus/" + r.headers["Location"].rsplit("/", 1)[1]
    r = await c.patch(url, data=EICAR, headers={
        **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"})
    assert r.status == 422 and (await r.json())["error"] == "infected"
    assert (await counts(pool))["media"] == 0


async def test_unavailable_and_failing_closed_keeps_nothing(client_with, message_id, pool,
                                                             unavailable):
    c = await client_with(scan__clamd=unavailable,
                          scan__timeout_seconds=0.5)
    r = await upload(c, message_id, jpeg_bytes(50_000), "image/jpeg")
    assert r.status == 503 and (await r.json())["error"] == "scan_unavailable"
    assert int(r.headers["Retry-After"]) > 0
    assert await counts(pool) == {"media": 0, "chunks": 0, "unscanned": 0, "quarantined": 0}


async def test_unavailable_and_failing_open_stores_unscanned_for_the_worker(
        client_with, clamd, message_id, pool, store, unavailable):
    c = await client_with(scan__clamd=unavailable,
                          scan__timeout_seconds=0.5, scan__fail_open=True)
    clean = jpeg_bytes(50_000)
    r = await upload(c, message_id, clean, "image/jpeg")
    assert r.status == 201
    clean_id = (await r.json())["id"]
    r = await upload(c, message_id, EICAR)
    assert r.status == 201
    infected_id = (await r.json())["id"]
    assert (await counts(pool))["unscanned"] == 2
    # clamd is back: the worker's pass scans both, quarantines the infected one.
    back = Scanner(parse_address(clamd), 10.0)
    assert await scan_unscanned(store, back) == 2
    assert await counts(pool) == {"media": 2, "chunks": (await counts(pool))["chunks"],
                                  "unscanned": 0, "quarantined": 1}
    assert (await c.get(f"/api/media/serve/{clean_id}")).status == 200
    r = await c.get(f"/api/media/serve/{infected_id}")
    assert r.status == 451 and (await r.json())["error"] == "media_quarantined"
    r = await c.get(f"/api/media/{infected_id}")
    assert (await r.json())["quarantine_reason"].startswith("infected: eicar")


async def test_the_worker_leaves_the_backlog_while_clamd_is_away(client_with, message_id,
                                                                 pool, store, nobody):
    c = await client_with(scan__clamd=nobody, scan__fail_open=True)
    assert (await upload(c, message_id, EICAR)).status == 201
    from server.hygiene.clamd import ClamdUnavailable
    with pytest.raises(ClamdUnavailable):
        await scan_unscanned(store, Scanner(parse_address(nobody), 0.5))
    assert (await counts(pool))["unscanned"] == 1
    async with pool.acquire() as conn:   # given back for the next pass, not held
        assert await conn.fetchval("SELECT claimed_at FROM unscanned_contents") is None


async def test_scan_command_rescans_and_quarantines(client, clamd, message_id, pool,
                                                   settings, db_dsn, capsys):
    # Stored while scanning was off; a signature update later finds it.
    r = await upload(client, message_id, EICAR)
    infected_id = (await r.json())["id"]
    assert (await upload(client, message_id, jpeg_bytes(30_000), "image/jpeg")).status == 201
    from server.cli.scan import scan_command
    code = await asyncio.to_thread(scan_command, db_dsn,
                                   replace_settings(settings, scan__clamd=clamd), None)
    out = capsys.readouterr().out
    assert code == 3
    assert f"infected: media {infected_id}: eicar" in out
    assert "scanned 2 content(s), quarantined 1" in out
    assert (await client.get(f"/api/media/serve/{infected_id}")).status == 451


async def test_legacy_imports_are_scanned(store, pool, tmp_path, clamd, nobody):
    from server.legacy.importer import FAILED, IMPORTED
    from tests.legacy_util import make_chat, run_import
    chat = await make_chat(pool, tmp_path / "folder")
    # clamd away (failing closed): nothing is imported, each file says why.
    report, _ = await run_import(store, chat, scanner=Scanner(parse_address(nobody), 0.5))
    stored = [r for r in report.rows if r.outcome in (IMPORTED, FAILED)
              and r.name != "page.html"]
    assert stored and all(r.outcome == FAILED and r.reason.startswith("scan_unavailable")
                          for r in stored)
    report, _ = await run_import(store, chat, scanner=Scanner(parse_address(clamd), 10.0))
    assert {r.name for r in report.rows if r.outcome == IMPORTED} == {r.name for r in stored}


async def test_eicar_by_import_url_is_refused(client_with, clamd, message_id, pool,
                                             aiohttp_server):
    from tests.http.test_import_url import Origin
    origin = Origin()
    origin.files["eicar.com"] = EICAR
    server = await aiohttp_server(origin.app, host="127.0.0.1")
    c = await client_with(scan__clamd=clamd, import_url__allow_http=True,
                          import_url__allow_private=True)
    r = await c.post("/api/media/import-url", json={
        "message_id": message_id, "url": f"http://127.0.0.1:{server.port}/file/eicar.com"})
    assert r.status == 422 and (await r.json())["signature"].startswith("eicar")
    assert (await counts(pool))["media"] == 0
