"""/uploads/media/{name}: redirects for imported files, the folder served during the
transition (with Deprecation and Sunset), traversal refused, 410 after the sunset."""
from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta, timezone

import pytest

from server.http.conditional import http_date
from server.legacy.importer import IMPORTED
from server.api.legacy_urls import deprecation_headers, sf_date
from tests.dbutil import fetchval
from tests.legacy_util import make_chat, run_import
from tests.media import png_bytes

SUNSET = datetime(2099, 1, 1, tzinfo=timezone.utc)
DEPRECATED = datetime(2026, 11, 1, tzinfo=timezone.utc)
DEPRECATION = "@1793491200"      # date -d 2026-11-01Z +%s


@pytest.fixture
async def imported(store, pool, tmp_path):
    chat = await make_chat(pool, tmp_path)
    # Something outside the folder that a traversal would like to reach.
    (tmp_path / "secret.jpg").write_bytes(chat.files["a.jpg"])
    os.symlink(tmp_path / "secret.jpg", chat.folder / "escape.jpg")
    os.symlink(tmp_path, chat.folder / "up")
    report, _ = await run_import(store, chat)
    return chat, {r.name: r.media_id for r in report.rows if r.outcome == IMPORTED}


@pytest.fixture
async def legacy_client(imported, server_for):
    # An old client: no API key, only the URL it always had.
    chat, _ = imported
    return await server_for(legacy__dir=chat.folder, legacy__sunset=SUNSET,
                            legacy__deprecated_at=DEPRECATED, key=None)


def signed_to(location: str, media_id: int) -> bool:
    """A freshly signed URL of that media (access control's exp and sig)."""
    return (location.startswith(f"/api/media/serve/{media_id}?")
            and "exp=" in location and "sig=" in location)


@pytest.mark.parametrize("path,name", [
    ("a.jpg", "a.jpg"), ("b.png", "b.png"), ("2023/c.jpg", "2023/c.jpg"),
    ("foto%201.jpg", "foto 1.jpg")])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_every_imported_file_redirects(legacy_client, imported, path, name, method):
    _, ids = imported
    resp = await legacy_client.request(method, f"/uploads/media/{path}", allow_redirects=False)
    assert resp.status == 302
    assert signed_to(resp.headers["Location"], ids[name])
    assert resp.headers["Sunset"] == http_date(SUNSET)
    assert resp.headers["Deprecation"] == DEPRECATION


async def test_redirect_keeps_the_query_and_lands_on_the_bytes(legacy_client, imported,
                                                               db_dsn):
    chat, ids = imported
    resp = await legacy_client.get("/uploads/media/a.jpg?w=100&x=%20y", allow_redirects=False)
    location = resp.headers["Location"]
    assert signed_to(location, ids["a.jpg"]) and location.endswith("&w=100&x=%20y")
    assert resp.headers["Cache-Control"] == "no-store"
    # Followed without any credential: the signature is the credential.
    resp = await legacy_client.get("/uploads/media/a.jpg")
    assert resp.status == 200 and await resp.read() == chat.files["a.jpg"]
    # Each hand-out of a signed URL is audited.
    assert await fetchval(db_dsn, "SELECT count(*) FROM media_audit_log WHERE action = "
                                  "'legacy_redirect' AND media_id = $1", ids["a.jpg"]) == 2


async def test_redirect_by_generated_file_name(legacy_client, imported, store):
    _, ids = imported
    rec = await store.stat(ids["b.png"])
    resp = await legacy_client.get(f"/uploads/media/{rec.file_name}", allow_redirects=False)
    assert resp.status == 302 and signed_to(resp.headers["Location"], rec.id)


async def test_a_generated_file_name_that_was_never_a_legacy_file_is_404(
        legacy_client, imported, client, store, message_id):
    # Uploaded through the API, never a legacy file: its generated name is no credential.
    resp = await client.post("/api/media/upload-production",
                             params={"message_id": str(message_id)}, data=png_bytes(),
                             headers={"Content-Type": "image/png"})
    assert resp.status == 201, await resp.text()
    rec = await store.stat((await resp.json())["id"])
    resp = await legacy_client.get(f"/uploads/media/{rec.file_name}", allow_redirects=False)
    assert resp.status == 404
    assert (await resp.json())["error"] == "media_not_found"
    # An imported file's generated name still redirects (the test above), its legacy
    # name too.
    _, ids = imported
    imported_rec = await store.stat(ids["a.jpg"])
    for name in ("a.jpg", imported_rec.file_name):
        resp = await legacy_client.get(f"/uploads/media/{name}", allow_redirects=False)
        assert resp.status == 302 and signed_to(resp.headers["Location"], imported_rec.id)


async def test_not_imported_yet_is_served_from_the_folder(legacy_client, imported):
    chat, _ = imported
    data = chat.files["orphan.jpg"]
    resp = await legacy_client.get("/uploads/media/orphan.jpg")
    assert resp.status == 200 and await resp.read() == data
    h = resp.headers
    assert h["Content-Type"] == "image/jpeg" and h["Accept-Ranges"] == "bytes"
    assert h["Deprecation"] == DEPRECATION and h["Sunset"] == http_date(SUNSET)
    assert h["ETag"].startswith('"legacy-') and "immutable" not in h["Cache-Control"]
    assert h["X-Content-Type-Options"] == "nosniff"
    etag = h["ETag"]

    resp = await legacy_client.get("/uploads/media/orphan.jpg",
                                   headers={"Range": "bytes=100-199"})
    assert resp.status == 206 and await resp.read() == data[100:200]
    assert resp.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert resp.headers["Sunset"] == http_date(SUNSET)

    resp = await legacy_client.get("/uploads/media/orphan.jpg",
                                   headers={"If-None-Match": etag})
    assert resp.status == 304 and resp.headers["Deprecation"] == DEPRECATION

    resp = await legacy_client.get("/uploads/media/orphan.jpg",
                                   headers={"Range": f"bytes={len(data)}-"})
    assert resp.status == 416 and resp.headers["Sunset"] == http_date(SUNSET)

    resp = await legacy_client.head("/uploads/media/orphan.jpg")
    assert resp.status == 200 and resp.headers["Content-Length"] == str(len(data))
    assert await resp.read() == b""

    resp = await legacy_client.get("/uploads/media/orphan.jpg",
                                   headers={"Range": "bytes=0-1,500-501"})
    assert resp.status == 206 and "multipart/byteranges" in resp.headers["Content-Type"]


async def test_an_unknown_type_is_a_download(legacy_client, imported):
    resp = await legacy_client.get("/uploads/media/page.html")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.headers["Content-Disposition"].startswith("attachment")


async def _raw_get(client, target: str) -> tuple[int, bytes]:
    """A request line sent as is: no client library normalises the path first."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                     .encode("latin-1"))
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    return int(raw.split(b" ", 2)[1]), raw


@pytest.mark.parametrize("target", [
    "/uploads/media/../uploads-media/a.jpg",
    "/uploads/media/..%2Fsecret.jpg",
    "/uploads/media/%2e%2e/secret.jpg",
    "/uploads/media/%2E%2E%2Fsecret.jpg",
    "/uploads/media/2023%2Fc.jpg",              # an encoded slash is not a separator
    "/uploads/media/2023%2fc.jpg",
    "/uploads/media/..%5Csecret.jpg",
    "/uploads/media//etc/passwd",
    "/uploads/media/%2Fetc%2Fpasswd",
    "/uploads/media/a.jpg%00.png",
    "/uploads/media/escape.jpg",                # a symlink out of the folder
    "/uploads/media/up/secret.jpg",             # through a folder symlink
    "/uploads/media/2023",                      # a folder
    "/uploads/media/nothing.jpg",
    "/uploads/media/%ff.jpg",
])
async def test_traversal_is_refused(legacy_client, imported, target):
    status, raw = await _raw_get(legacy_client, target)
    assert status in (400, 404), raw[:200]
    assert b"secret" not in raw.split(b"\r\n\r\n", 1)[-1]
    assert b"\xff\xd8\xff" not in raw                  # no JPEG bytes came back


async def test_after_the_sunset_legacy_urls_are_gone(imported, server_for):
    chat, _ = imported
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    client = await server_for(legacy__dir=chat.folder, legacy__sunset=past,
                              legacy__deprecated_at=DEPRECATED, key=None)
    for name in ("a.jpg", "orphan.jpg", "nothing.jpg"):
        resp = await client.get(f"/uploads/media/{name}", allow_redirects=False)
        assert resp.status == 410
        assert (await resp.json())["error"] == "legacy_url_gone"
        assert resp.headers["Sunset"] == http_date(past)
        assert resp.headers["Deprecation"] == DEPRECATION


async def test_without_the_folder_only_imported_files_answer(imported, client):
    _, ids = imported
    resp = await client.get("/uploads/media/a.jpg", allow_redirects=False)
    assert resp.status == 302
    resp = await client.get("/uploads/media/orphan.jpg")
    assert resp.status == 404 and (await resp.json())["error"] == "media_not_found"
    assert "Sunset" not in resp.headers and "Deprecation" not in resp.headers


UTC = timezone.utc


@pytest.mark.parametrize("when, header", [
    (datetime(1970, 1, 1, tzinfo=UTC), "@0"),
    (datetime(2023, 6, 30, 23, 59, 59, tzinfo=UTC), "@1688169599"),   # RFC 9745's example
    (DEPRECATED, DEPRECATION),
    # A zone is converted, not dropped: 09:00 at +01:00 is 08:00 UTC.
    (datetime(2026, 11, 1, 9, tzinfo=timezone(timedelta(hours=1))), "@1793520000"),
    # Whole seconds, rounded down: never later than the date set.
    (datetime(2026, 11, 1, 0, 0, 0, 999_999, tzinfo=UTC), DEPRECATION),
    (datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC), "@-1"),
])
def test_sf_date(when, header):
    assert sf_date(when) == header


@pytest.mark.parametrize("deprecated, sunset, expected", [
    (None, None, {}),
    (DEPRECATED, None, {"Deprecation": DEPRECATION}),
    (None, SUNSET, {"Sunset": "Thu, 01 Jan 2099 00:00:00 GMT"}),
    (DEPRECATED, SUNSET, {"Deprecation": DEPRECATION,
                          "Sunset": "Thu, 01 Jan 2099 00:00:00 GMT"}),
])
def test_deprecation_headers(deprecated, sunset, expected):
    assert deprecation_headers(deprecated, sunset) == expected


async def test_without_a_deprecation_date_no_deprecation_header(imported, server_for):
    chat, _ = imported
    client = await server_for(legacy__dir=chat.folder, legacy__sunset=SUNSET, key=None)
    resp = await client.get("/uploads/media/orphan.jpg")
    assert resp.status == 200 and "Deprecation" not in resp.headers
    assert resp.headers["Sunset"] == http_date(SUNSET)
