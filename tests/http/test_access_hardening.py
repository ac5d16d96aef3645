"""Issue 22, second pass, access control: an upload token cannot ask for a send; refused
credentials are counted, not listed, and the audit log has a retention; keys never in
?token=; deeply nested JSON is a 400 on every JSON route."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from server.security.audit import prune
from server.security.refusals import REFUSALS, RefusalCounter
from server.settings import SETTINGS
from server.workers.janitor import janitor
from tests.dbutil import bearer, fetchval
from tests.media import jpeg_bytes, png_bytes
from tests.zapi_util import wait_delivery, zapi_changes

UPLOAD = "/api/media/upload-production"
TUS = {"Tus-Resumable": "1.0.0"}
PHONE = "5511999999999"


def meta(**kw) -> str:
    return ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in kw.items())


@pytest.fixture
async def zclient(server_for, fake):
    """Sending to WhatsApp on (the fake Z-API), with the admin key."""
    return await server_for(**zapi_changes(fake.server.port))


@pytest.fixture
async def phone_client(zclient, aiohttp_client):
    """A phone: no key, only what an upload token gives it."""
    return await aiohttp_client(zclient.server)


async def token_for(client, message_id: int) -> str:
    resp = await client.post("/api/media/upload-tokens", json={"message_id": message_id})
    assert resp.status == 201, await resp.text()
    return (await resp.json())["token"]


async def counts(db_dsn) -> tuple[int, int, int]:
    """(media, deliveries, tus uploads) stored."""
    return (await fetchval(db_dsn, "SELECT count(*) FROM media_files"),
            await fetchval(db_dsn, "SELECT count(*) FROM zapi_deliveries"),
            await fetchval(db_dsn, "SELECT count(*) FROM tus_uploads"))


# -- 1. an upload token cannot send ---------------------------------------------------

async def expect_refused(resp):
    assert resp.status == 403, await resp.text()
    body = await resp.json()
    assert body["error"] == "token_not_allowed" and "send_to" in body["message"]


async def test_a_token_cannot_send_with_a_raw_upload(zclient, phone_client, fake,
                                                     message_id, db_dsn):
    token = await token_for(zclient, message_id)
    for credential in ({"params": {"token": token}}, {"headers": bearer(token)}):
        resp = await phone_client.post(
            UPLOAD, data=png_bytes(),
            params={"message_id": str(message_id), "send_to": PHONE, "caption": "spam",
                    **credential.get("params", {})},
            headers={"Content-Type": "image/png", **credential.get("headers", {})})
        await expect_refused(resp)
    assert await counts(db_dsn) == (0, 0, 0) and fake.received == []
    # The same token without send_to still uploads.
    resp = await phone_client.post(UPLOAD, params={"message_id": str(message_id)},
                                   data=png_bytes(),
                                   headers={"Content-Type": "image/png", **bearer(token)})
    assert resp.status == 201


@pytest.mark.parametrize("send_first", [True, False])
async def test_a_token_cannot_send_with_a_multipart_upload(zclient, phone_client, fake,
                                                           message_id, db_dsn, send_first):
    token = await token_for(zclient, message_id)
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("message_id", str(message_id))
    if send_first:
        form.add_field("send_to", PHONE)
    # Big enough that the file is being stored when send_to arrives after it.
    form.add_field("file", jpeg_bytes(300_000), filename="p.jpg", content_type="image/jpeg")
    if not send_first:
        form.add_field("send_to", PHONE)
        form.add_field("caption", "spam")
    resp = await phone_client.post(UPLOAD, data=form, headers=bearer(token))
    await expect_refused(resp)
    assert await counts(db_dsn) == (0, 0, 0) and fake.received == []
    # Nothing of the aborted file is left either (no chunks, no content).
    assert await fetchval(db_dsn, "SELECT count(*) FROM content_chunks") == 0
    assert await fetchval(db_dsn, "SELECT count(*) FROM media_audit_log WHERE action = "
                                  "'upload' AND outcome = 'token_not_allowed'") == 1


async def test_a_token_cannot_send_with_a_tus_upload(zclient, phone_client, fake,
                                                     message_id, db_dsn):
    token = await token_for(zclient, message_id)
    resp = await phone_client.post("/api/media/tus/", headers={
        **TUS, **bearer(token), "Upload-Length": "100",
        "Upload-Metadata": meta(message_id=message_id, filename="p.jpg", send_to=PHONE,
                                caption="spam")})
    await expect_refused(resp)
    assert await counts(db_dsn) == (0, 0, 0) and fake.received == []
    resp = await phone_client.post("/api/media/tus/", headers={
        **TUS, **bearer(token), "Upload-Length": "100",
        "Upload-Metadata": meta(message_id=message_id, filename="p.jpg")})
    assert resp.status == 201


async def test_a_key_sends_with_its_upload_and_the_audit_names_the_number(
        zclient, fake, message_id, db_dsn):
    resp = await zclient.post(UPLOAD, data=png_bytes(), params={
        "message_id": str(message_id), "send_to": PHONE, "caption": "hi"},
        headers={"Content-Type": "image/png"})
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    await wait_delivery(zclient, body["delivery"]["delivery_id"])
    assert [r.body["phone"] for r in fake.received] == [PHONE]
    assert await fetchval(db_dsn, "SELECT outcome FROM media_audit_log WHERE action = "
                                  "'zapi_send' AND media_id = $1", body["id"]) \
        == f"ok: to {PHONE}"


# -- 7. refused credentials are counted ------------------------------------------------

async def denied_rows(db_dsn) -> list[tuple]:
    import asyncpg
    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch("SELECT actor, outcome, host(client_addr) AS addr, count, "
                                "minute IS NOT NULL AS counted FROM media_audit_log "
                                "WHERE action = 'access_denied' ORDER BY actor, outcome")
    finally:
        await conn.close()
    return [tuple(r) for r in rows]


async def test_refusals_without_a_valid_credential_are_one_row_with_a_count(
        client, anon_client, server_for, aiohttp_client, message_id, db_dsn, key_for):
    n = 40
    for _ in range(n):
        resp = await anon_client.get("/api/media/1", headers={"Authorization": "Bearer x"})
        assert resp.status == 401
    for i in range(n // 2):
        resp = await anon_client.get(f"/api/media/serve/1?exp=9999999999&sig={'A' * 43}")
        assert resp.status == 403
    # Another instance on the same database counts into the same row.
    other = await aiohttp_client((await server_for(key=None)).server)
    for _ in range(n // 2):
        resp = await other.get("/api/media/1", headers={"Authorization": "Bearer x"})
        assert resp.status == 401
    # A valid key without the scope is not noise: a row per refusal.
    reader = await key_for("read", "reader")
    for _ in range(2):
        resp = await anon_client.delete("/api/media/1", headers=bearer(reader))
        assert resp.status == 403
    # Each process wrote its first refusal of each reason at once (the bad key: once
    # per server, into one row; the bad signature: one server), and holds the rest as
    # counts until its next flush (every few seconds, and at shutdown): now.
    first = await denied_rows(db_dsn)
    assert sorted(count for *_, count, counted in first if counted) == [1, 2]
    for app in (client.app, other.server.app):
        await app[REFUSALS].flush()
    # (Both servers see the same minute unless the clock turns one over meanwhile.)
    rows = await denied_rows(db_dsn)
    by_reason = {}
    for actor, outcome, addr, count, counted in rows:
        assert addr == "127.0.0.1"
        by_reason.setdefault((actor, outcome, counted), []).append(count)
    assert sum(by_reason.pop(("unknown-key", "401 invalid_credentials", True))) \
        == n + n // 2
    assert sum(by_reason.pop(("signed-url", "403 invalid_signature", True))) == n // 2
    assert by_reason == {("reader", "403 forbidden", False): [1, 1]}
    assert len(rows) <= 2 + 2 + 2   # one counted row per reason (two over a minute's turn)
    # Counted once: flushing again adds nothing.
    await client.app[REFUSALS].flush()
    assert await denied_rows(db_dsn) == rows
    # GET /api/audit shows the count.
    entries = (await (await client.get("/api/audit?action=access_denied")).json())["entries"]
    assert sum(e["count"] for e in entries if e["actor"] == "signed-url") == n // 2


async def test_the_counter_by_minute_and_within_its_memory_bound(store, db_dsn):
    from server.security.audit import AuditEntry
    now = [1_800_000_000.0]          # a minute's start
    counter = RefusalCounter(store, clock=lambda: now[0], max_keys=2)

    def entry(addr, actor="unknown-key"):
        return AuditEntry(actor=actor, action="access_denied", client_addr=addr,
                          outcome="401 invalid_credentials")
    for _ in range(5):
        await counter.count(entry("10.0.0.1"))
    await counter.count(entry("10.0.0.2"))
    for _ in range(3):                # past max_keys: each written at once, none kept
        await counter.count(entry("10.0.0.3"))
    assert len(counter._pending) == 2
    now[0] += 61                      # the next minute: a row of its own
    await counter.count(entry("10.0.0.1"))
    await counter.count(entry("10.0.0.1"))
    await counter.flush()
    rows = await denied_rows(db_dsn)
    got = sorted((addr, count, counted) for _, _, addr, count, counted in rows)
    assert got == [("10.0.0.1", 2, True), ("10.0.0.1", 5, True), ("10.0.0.2", 1, True),
                   ("10.0.0.3", 3, True)]
    # The past minute's keys were forgotten once flushed (the current minute's came
    # while memory was full: written at once, not held); room again for the next.
    assert counter._pending == {}
    await counter.count(entry("10.0.0.4"))
    assert [k[1] for k in counter._pending] == ["10.0.0.4"]


async def test_retention_deletes_old_rows_in_batches_and_keeps_new_ones(client, store,
                                                                       db_dsn):
    import asyncpg
    conn = await asyncpg.connect(db_dsn)
    try:
        now = datetime.now(timezone.utc)
        for i in range(10):
            await conn.execute("INSERT INTO media_audit_log (at, actor, action, outcome) "
                               "VALUES ($1, 'old', 'upload', 'ok')",
                               now - timedelta(days=400 + i))
        for days in (0, 10, 364):
            await conn.execute("INSERT INTO media_audit_log (at, actor, action, outcome) "
                               "VALUES ($1, 'new', 'upload', 'ok')", now - timedelta(days=days))

        async def left(actor):
            return await conn.fetchval("SELECT count(*) FROM media_audit_log "
                                       "WHERE actor = $1", actor)
        assert await prune(store, 365, batch=3, max_batches=1) == 3   # one batch only
        assert await left("old") == 7
        assert await prune(store, 365, batch=3, max_batches=2) == 6
        assert await left("old") == 1
        assert await prune(store, 365, batch=3) == 1
        assert await prune(store, 365, batch=3) == 0
        assert await left("old") == 0 and await left("new") == 3
        assert await prune(store, 5, batch=3) == 2   # a shorter retention takes more
        assert await left("new") == 1
    finally:
        await conn.close()


async def test_the_janitor_applies_the_retention(server_for, db_dsn):
    import asyncio
    import asyncpg
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute("INSERT INTO media_audit_log (at, actor, action, outcome) "
                           "VALUES (now() - interval '3 days', 'old', 'upload', 'ok'), "
                           "(now(), 'new', 'upload', 'ok')")
        client = await server_for(security__audit_retention_days=2,
                                  workers__janitor_interval_seconds=3600)
        # Tests start apps without their janitor (to run it when they choose): here.
        task = asyncio.create_task(janitor(client.app))
        try:
            for _ in range(200):
                if await conn.fetchval("SELECT count(*) FROM media_audit_log "
                                       "WHERE actor = 'old'") == 0:
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
        assert await conn.fetchval("SELECT count(*) FROM media_audit_log "
                                   "WHERE actor = 'old'") == 0
        assert await conn.fetchval("SELECT count(*) FROM media_audit_log "
                                   "WHERE actor = 'new'") == 1
    finally:
        await conn.close()


# -- 11. ?token= takes upload tokens only ---------------------------------------------

async def test_an_api_key_in_the_query_string_is_refused(client, anon_client, key_for,
                                                        message_id, db_dsn):
    key = await key_for("write", "writer")
    for path in (UPLOAD, "/api/media/tus/"):
        resp = await anon_client.post(path, params={"token": key, "message_id": str(message_id)},
                                      data=png_bytes(),
                                      headers={"Content-Type": "image/png", **TUS,
                                               "Upload-Length": "100"})
        assert resp.status == 401, await resp.text()
        body = await resp.json()
        assert body["error"] == "key_in_query" and "Authorization" in body["message"]
    # Even with the key also in the header: the URL carrying it is the harm.
    resp = await anon_client.post(UPLOAD, params={"token": key, "message_id": str(message_id)},
                                  data=png_bytes(),
                                  headers={"Content-Type": "image/png", **bearer(key)})
    assert resp.status == 401 and (await resp.json())["error"] == "key_in_query"
    assert await fetchval(db_dsn, "SELECT count(*) FROM media_files") == 0
    # The same key in the header works.
    resp = await anon_client.post(UPLOAD, params={"message_id": str(message_id)},
                                  data=png_bytes(),
                                  headers={"Content-Type": "image/png", **bearer(key)})
    assert resp.status == 201


async def test_upload_tokens_still_work_in_the_query_and_in_the_header(
        client, anon_client, message_id):
    token = await token_for(client, message_id)
    resp = await anon_client.post(UPLOAD, params={"token": token, "message_id": str(message_id)},
                                  data=png_bytes(), headers={"Content-Type": "image/png"})
    assert resp.status == 201, await resp.text()
    resp = await anon_client.post(UPLOAD, params={"message_id": str(message_id)},
                                  data=png_bytes(),
                                  headers={"Content-Type": "image/png", **bearer(token)})
    assert resp.status == 201, await resp.text()
    resp = await anon_client.post("/api/media/tus/", params={"token": token}, headers={
        **TUS, "Upload-Length": "100", "Upload-Metadata": meta(message_id=message_id)})
    assert resp.status == 201, await resp.text()


# -- 9. deeply nested JSON ---------------------------------------------------------------

NESTED = [b"[" * 2000 + b"]" * 2000, b"[" * 4000, b"not json"]   # all within 4 KiB
DEEP = [b"[" * 5000, b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000]
ROUTES = ["import-url", "upload-tokens", "send", "webhook"]


async def post_json(zclient, message_id, route, body):
    from tests.zapi_util import media_samples, upload
    path = {"import-url": "/api/media/import-url",
            "upload-tokens": "/api/media/upload-tokens",
            "webhook": "/api/zapi/webhook/" + zclient.app[SETTINGS]
            .zapi.webhook_secret}.get(route)
    if route == "send":
        data, ctype, name = media_samples()["image"]
        path = f"/api/media/{(await upload(zclient, message_id, data, ctype, name))['id']}/send"
    return await zclient.post(path, data=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("body", NESTED)
@pytest.mark.parametrize("route", ROUTES)
async def test_bad_or_deeply_nested_json_is_400_invalid_json(zclient, message_id, route,
                                                             body):
    resp = await post_json(zclient, message_id, route, body)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"] == "invalid_json"


@pytest.mark.parametrize("body", DEEP)
@pytest.mark.parametrize("route", ROUTES)
async def test_json_nested_5000_deep_is_never_a_500(zclient, message_id, route, body):
    resp = await post_json(zclient, message_id, route, body)
    # upload-tokens takes 4 KiB bodies at most: a larger one is a 413 before parsing.
    expected = (413, "payload_too_large") if route == "upload-tokens" \
        else (400, "invalid_json")
    assert (resp.status, (await resp.json())["error"]) == expected


# -- 9. secrets in paths never reach a log -------------------------------------------------

async def test_a_secret_in_the_path_is_its_route_template_in_the_error_log(server_for,
                                                                         caplog):
    secret = "s3cr3t-path-segment-" + "x" * 12

    async def boom(request):
        raise RuntimeError("a bug")

    def setup(app):
        app.router.add_post("/api/test/boom/{secret}", boom)   # undeclared: admin

    client = await server_for(setup=setup)
    with caplog.at_level("DEBUG"):
        resp = await client.post(f"/api/test/boom/{secret}")
    assert resp.status == 500
    # aiohttp.access is the test server's own access logger; the service's (logformat's
    # AccessLogger, which run.py installs) takes its path from the same safe_path.
    ours = [r for r in caplog.records if r.name != "aiohttp.access"]
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in ours)
    assert "unhandled error on POST /api/test/boom/{secret}" in logged
    assert secret not in logged


def test_safe_path_table():
    from aiohttp.test_utils import make_mocked_request
    from aiohttp.web_urldispatcher import UrlDispatcher

    from server.observability.paths import safe_path

    async def handler(request):
        return None
    router = UrlDispatcher()
    router.add_post("/api/zapi/webhook/{secret}", handler)
    router.add_get("/api/media/{mediaId}", handler)
    import asyncio

    def path_of(method, url):
        req = make_mocked_request(method, url)
        req._match_info = asyncio.run(router.resolve(req))
        return safe_path(req)
    assert path_of("POST", "/api/zapi/webhook/TOPSECRET?x=1") == "/api/zapi/webhook/{secret}"
    assert path_of("GET", "/api/media/5?sig=abc") == "/api/media/5"
    assert path_of("GET", "/nowhere/TOPSECRET") == "/nowhere/TOPSECRET"
