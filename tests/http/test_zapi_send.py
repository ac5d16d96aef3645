"""Sending stored media to WhatsApp through the outbox, against the fake Z-API (a real
HTTP server on loopback): endpoints and bodies per media type, retries, refusals,
timeouts, 429s, the concurrency cap, and two outboxes on one table."""
from __future__ import annotations

import asyncio
import logging

import pytest

from tests import fake_zapi
from tests.fake_zapi import FakeZapi
from tests.zapi_util import media_samples, upload, wait_delivery, zapi_changes


@pytest.fixture
async def fake(aiohttp_server):
    f = FakeZapi(hang_seconds=3.0)
    f.server = await aiohttp_server(f.app, host="127.0.0.1")
    return f


@pytest.fixture
def make_client(server_for, fake):
    async def make(**changes):
        return await server_for(**zapi_changes(fake.server.port, **changes))
    return make


async def send(client, media_id, phone="5511999999999", **extra):
    resp = await client.post(f"/api/media/{media_id}/send", json={"phone": phone, **extra})
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert body["state"] == "queued" and resp.headers["Location"] == body["url"]
    return body["delivery_id"]


async def photo(client, message_id):
    data, ctype, name = media_samples()["image"]
    return await upload(client, message_id, data, ctype, name), data


# -- what is posted ---------------------------------------------------------------

@pytest.mark.parametrize("kind,endpoint", [
    ("image", "send-image"), ("video", "send-video"), ("audio", "send-audio"),
    ("document", "send-document/pdf")])
async def test_each_media_type_hits_its_endpoint_with_the_stored_bytes(
        make_client, fake, message_id, kind, endpoint):
    client = await make_client()
    data, ctype, name = media_samples()[kind]
    media = await upload(client, message_id, data, ctype, name)
    delivery = await wait_delivery(client, await send(client, media["id"], caption="hello"))
    assert delivery["state"] == "sent", delivery
    [got] = fake.received
    assert got.endpoint == endpoint
    assert got.headers["Client-Token"] == fake_zapi.CLIENT_TOKEN
    assert got.headers["Content-Type"] == "application/json"
    # Streamed, yet with its exact length announced (not chunked).
    assert got.headers["Content-Length"] == str(got.raw_length)
    assert "Transfer-Encoding" not in got.headers
    assert got.body["phone"] == "5511999999999"
    mime, decoded = got.media_bytes()
    assert decoded == data and mime == ctype
    if kind == "audio":
        assert "caption" not in got.body           # Z-API's send-audio takes none
    else:
        assert got.body["caption"] == "hello"
    if kind == "document":
        assert got.body["fileName"] == name
    else:
        assert "fileName" not in got.body


async def test_success_records_both_ids_on_delivery_and_media(make_client, fake, message_id):
    client = await make_client()
    media, _ = await photo(client, message_id)
    delivery = await wait_delivery(client, await send(client, media["id"], reply_to="ABC123"))
    [got] = fake.received
    assert got.body["messageId"] == "ABC123"
    assert delivery["state"] == "sent" and delivery["attempts"] == 1
    assert delivery["zapi_message_id"] == got.message_id
    assert delivery["zaap_id"].startswith("39999842637380")
    assert delivery["sent_at"] is not None and delivery["last_error"] is None
    after = await (await client.get(f"/api/media/{media['id']}")).json()
    assert after["zapi_sent"] is True and after["zapi_message_id"] == got.message_id
    listed = await (await client.get(f"/api/media/{media['id']}/deliveries")).json()
    assert [d["id"] for d in listed["deliveries"]] == [delivery["id"]]


async def test_url_mode_sends_a_signed_public_url(make_client, fake, message_id,
                                                  aiohttp_client):
    client = await make_client(zapi__media_mode="url",
                               zapi__public_base_url="https://media.example.com")
    media, data = await photo(client, message_id)
    await wait_delivery(client, await send(client, media["id"]))
    [got] = fake.received
    url = got.body["image"]
    assert url.startswith(f"https://media.example.com/api/media/serve/{media['id']}?")
    # Z-API has no API key: the URL alone must fetch the bytes.
    anon = await aiohttp_client(client.server)
    resp = await anon.get(url[len("https://media.example.com"):])
    assert resp.status == 200 and await resp.read() == data


# -- failures -------------------------------------------------------------------------

async def test_5xx_then_success_retries(make_client, fake, message_id):
    client = await make_client()
    media, data = await photo(client, message_id)
    fake.plan("5xx", "5xx")
    delivery = await wait_delivery(client, await send(client, media["id"]))
    assert delivery["state"] == "sent" and delivery["attempts"] == 3
    assert [r.answered for r in fake.received] == ["5xx", "5xx", "ok"]
    assert all(r.media_bytes()[1] == data for r in fake.received)


async def test_5xx_until_attempts_run_out_fails(make_client, fake, message_id):
    client = await make_client(zapi__max_attempts=3)
    media, _ = await photo(client, message_id)
    fake.plan("5xx", "5xx", "5xx", "5xx")
    delivery = await wait_delivery(client, await send(client, media["id"]))
    assert delivery["state"] == "failed" and delivery["attempts"] == 3
    assert "gave up after 3 attempts" in delivery["last_error"]
    assert delivery["last_http_status"] == 503
    assert len(fake.received) == 3


@pytest.mark.parametrize("behaviour,error", [
    ("4xx", "Phone number is not valid"), ("no_message_id", "without a messageId")])
async def test_refusals_fail_at_once(make_client, fake, message_id, behaviour, error):
    client = await make_client()
    media, _ = await photo(client, message_id)
    fake.plan(behaviour)
    delivery = await wait_delivery(client, await send(client, media["id"]))
    assert delivery["state"] == "failed" and delivery["attempts"] == 1
    assert error in delivery["last_error"]
    await asyncio.sleep(0.3)
    assert len(fake.received) == 1
    after = await (await client.get(f"/api/media/{media['id']}")).json()
    assert after["zapi_sent"] is False


async def test_timeout_becomes_unknown_and_is_not_posted_again(make_client, fake, message_id):
    client = await make_client()
    media, _ = await photo(client, message_id)
    fake.plan("hang")
    delivery = await wait_delivery(client, await send(client, media["id"]))
    assert delivery["state"] == "unknown" and "may have been queued" in delivery["last_error"]
    await asyncio.sleep(1.0)
    assert len(fake.received) == 1
    assert (await wait_delivery(client, delivery["id"]))["state"] == "unknown"


async def test_timeout_reposted_with_retry_unknown(make_client, fake, message_id):
    client = await make_client(zapi__retry_unknown=True)
    media, _ = await photo(client, message_id)
    fake.plan("hang")
    delivery = await wait_delivery(client, await send(client, media["id"]), states=("sent",))
    assert delivery["attempts"] == 2
    assert [r.answered for r in fake.received] == ["hang", "ok"]


async def test_429_backs_off_without_spending_an_attempt(make_client, fake, message_id):
    client = await make_client(zapi__max_attempts=1)
    media, _ = await photo(client, message_id)
    fake.plan("429", "429")
    loop = asyncio.get_running_loop()
    start = loop.time()
    delivery = await wait_delivery(client, await send(client, media["id"]))
    assert delivery["state"] == "sent" and delivery["attempts"] == 1
    assert len(fake.received) == 3
    assert loop.time() - start >= 2.0     # Retry-After: 1, twice


async def test_connection_refused_retries_then_fails(server_for, message_id):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    client = await server_for(**zapi_changes(dead, zapi__max_attempts=2))
    media, _ = await photo(client, message_id)
    delivery = await wait_delivery(client, await send(client, media["id"]))
    assert delivery["state"] == "failed" and delivery["attempts"] == 2
    assert "could not connect" in delivery["last_error"]


async def test_concurrency_cap(make_client, fake, message_id):
    client = await make_client(zapi__max_concurrency=2)
    fake.delay = 0.3
    media, _ = await photo(client, message_id)
    ids = [await send(client, media["id"], caption=f"n{i}") for i in range(6)]
    for d in ids:
        assert (await wait_delivery(client, d))["state"] == "sent"
    assert fake.max_in_flight == 2
    assert sorted(r.body["caption"] for r in fake.received) == [f"n{i}" for i in range(6)]


async def test_two_outboxes_on_one_table_never_send_a_row_twice(server_for, fake,
                                                                message_id):
    changes = zapi_changes(fake.server.port, zapi__max_concurrency=4)
    fake.delay = 0.02
    a = await server_for(**changes)
    b = await server_for(**changes)
    media, _ = await photo(a, message_id)
    ids = [await send(a if i % 2 else b, media["id"], caption=f"n{i}") for i in range(30)]
    for d in ids:
        assert (await wait_delivery(a, d))["state"] == "sent"
    captions = [r.body["caption"] for r in fake.received]
    assert sorted(captions) == sorted(f"n{i}" for i in range(30))   # each exactly once
    assert fake.max_in_flight <= 4


# -- the request ----------------------------------------------------------------------

@pytest.mark.parametrize("phone", ["+5511999999999", "55 11 99999 9999", "123", "5" * 16,
                                   "abc", "", None, 5511999999999, "group", "-group",
                                   "120363019502650977-grupo"])
async def test_bad_phone_is_400(make_client, fake, message_id, phone):
    client = await make_client()
    media, _ = await photo(client, message_id)
    resp = await client.post(f"/api/media/{media['id']}/send", json={"phone": phone})
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_phone"
    assert fake.received == []


async def test_group_ids_accepted(make_client, fake, message_id):
    client = await make_client()
    media, _ = await photo(client, message_id)
    for group in ("120363019502650977-group", "5511999999999-1623281429-group"):
        await wait_delivery(client, await send(client, media["id"], phone=group))
    assert [r.body["phone"] for r in fake.received] == [
        "120363019502650977-group", "5511999999999-1623281429-group"]


async def test_sending_off_without_credentials(client, message_id):
    media, _ = await photo(client, message_id)
    resp = await client.post(f"/api/media/{media['id']}/send", json={"phone": "5511999999999"})
    assert resp.status == 503
    body = await resp.json()
    assert body["error"] == "zapi_disabled" and "ZAPI_TOKEN" in body["message"]


@pytest.mark.parametrize("path,code", [
    ("/api/media/999999/send", "media_not_found"),
    ("/api/media/abc/send", "media_not_found")])
async def test_send_unknown_media_is_404(make_client, path, code):
    client = await make_client()
    resp = await client.post(path, json={"phone": "5511999999999"})
    assert resp.status == 404 and (await resp.json())["error"] == code


async def test_unknown_delivery_and_bad_bodies(make_client, message_id):
    client = await make_client()
    for path in ("/api/deliveries/999999", "/api/deliveries/x"):
        resp = await client.get(path)
        assert resp.status == 404 and (await resp.json())["error"] == "delivery_not_found"
    resp = await client.get("/api/media/999999/deliveries")
    assert resp.status == 404
    media, _ = await photo(client, message_id)
    for body in (b"nope", b"[]", b'{"phone": "5511999999999", "caption": 7}'):
        resp = await client.post(f"/api/media/{media['id']}/send", data=body,
                                 headers={"Content-Type": "application/json"})
        assert resp.status == 400, await resp.text()


async def test_credentials_never_logged(make_client, fake, message_id, caplog):
    caplog.set_level(logging.DEBUG)
    client = await make_client(zapi__max_attempts=2)
    media, _ = await photo(client, message_id)
    fake.plan("5xx", "4xx", "hang")
    for _ in range(3):
        await wait_delivery(client, await send(client, media["id"]))
    # The fake's own access log shows the path it was called on; ours is what counts.
    ours = [r for r in caplog.records if "/instances/" not in r.getMessage()]
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in ours)
    assert "delivery" in text    # the sends were logged at all
    deliveries = await (await client.get(f"/api/media/{media['id']}/deliveries")).text()
    metrics = await (await client.get("/metrics")).text()
    assert "media_zapi_send_attempts_total" in metrics
    audit = await (await client.get("/api/audit?action=zapi_attempt")).text()
    assert "zapi_attempt" in audit
    for secret in (fake_zapi.INSTANCE, fake_zapi.TOKEN, fake_zapi.CLIENT_TOKEN):
        assert secret not in text and secret not in deliveries and secret not in metrics
        assert secret not in audit


# -- a send asked for with the upload ----------------------------------------------------

async def count_media(client_app_pool_dsn):
    from tests.dbutil import fetchval
    return await fetchval(client_app_pool_dsn, "SELECT count(*) FROM media_files")


async def test_multipart_upload_with_send_to(make_client, fake, message_id):
    import aiohttp
    client = await make_client()
    data, _, _ = media_samples()["image"]
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("message_id", str(message_id))
    form.add_field("file", data, filename="p.jpg", content_type="image/jpeg")
    form.add_field("send_to", "5511999999999")
    form.add_field("caption", "from the form")
    resp = await client.post("/api/media/upload-production", data=form)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["delivery"]["state"] == "queued"
    delivery = await wait_delivery(client, body["delivery"]["delivery_id"])
    assert delivery["state"] == "sent" and delivery["media_id"] == body["id"]
    [got] = fake.received
    assert got.body["caption"] == "from the form" and got.media_bytes()[1] == data


async def test_raw_upload_with_send_to(make_client, fake, message_id):
    client = await make_client()
    data, ctype, _ = media_samples()["document"]
    resp = await client.post(
        f"/api/media/upload-production?message_id={message_id}&filename=r.pdf"
        "&send_to=120363019502650977-group&caption=doc", data=data,
        headers={"Content-Type": ctype})
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    await wait_delivery(client, body["delivery"]["delivery_id"])
    [got] = fake.received
    assert got.endpoint == "send-document/pdf" and got.body["fileName"] == "r.pdf"
    assert got.body["phone"] == "120363019502650977-group"


async def test_upload_without_send_to_has_no_delivery(make_client, fake, message_id):
    client = await make_client()
    media, _ = await photo(client, message_id)
    assert "delivery" not in media
    await asyncio.sleep(0.2)
    assert fake.received == []


@pytest.mark.parametrize("form_first", [True, False])
async def test_upload_with_bad_send_to_keeps_nothing(make_client, fake, message_id, db_dsn,
                                                     form_first):
    import aiohttp
    client = await make_client()
    data, _, _ = media_samples()["image"]
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("message_id", str(message_id))
    if form_first:
        form.add_field("send_to", "+55 11 9999")
    form.add_field("file", data, filename="p.jpg", content_type="image/jpeg")
    if not form_first:
        form.add_field("send_to", "+55 11 9999")
    resp = await client.post("/api/media/upload-production", data=form)
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_phone"
    raw = await client.post(f"/api/media/upload-production?message_id={message_id}"
                            "&send_to=nope", data=data, headers={"Content-Type": "image/jpeg"})
    assert raw.status == 400
    assert await count_media(db_dsn) == 0
    assert fake.received == []


async def test_upload_with_send_to_while_sending_is_off(client, message_id, db_dsn):
    data, ctype, _ = media_samples()["image"]
    resp = await client.post(f"/api/media/upload-production?message_id={message_id}"
                             "&send_to=5511999999999", data=data,
                             headers={"Content-Type": ctype})
    assert resp.status == 503 and (await resp.json())["error"] == "zapi_disabled"
    assert await count_media(db_dsn) == 0


async def test_scopes_send_and_import_need_write_deliveries_read(client_as, anon_client):
    reader = await client_as("read")
    for path, body in (("/api/media/1/send", {"phone": "5511999999999"}),
                       ("/api/media/import-url", {"message_id": 1, "url": "https://x.test/a"})):
        assert (await reader.post(path, json=body)).status == 403
        assert (await anon_client.post(path, json=body)).status == 401
    assert (await reader.get("/api/deliveries/1")).status == 404     # allowed, not there
    assert (await reader.get("/api/media/1/deliveries")).status == 404
    assert (await anon_client.get("/api/deliveries/1")).status == 401


async def test_sends_and_their_outcomes_are_audited(make_client, fake, message_id):
    client = await make_client()
    media, _ = await photo(client, message_id)
    fake.plan("5xx")
    d = await wait_delivery(client, await send(client, media["id"]))
    rows = (await (await client.get(f"/api/audit?media_id={media['id']}")).json())
    entries = rows["entries"] if isinstance(rows, dict) else rows
    actions = [(e["action"], e["actor"], e["outcome"]) for e in entries]
    # The row names the number sent to.
    assert ("zapi_send", "test-admin", "ok: to 5511999999999") in actions
    attempts = sorted(o for a, actor, o in actions if a == "zapi_attempt")
    assert attempts == [f"delivery {d['id']} attempt 1 retry: Z-API answered 503: "
                        "Internal server error", f"delivery {d['id']} attempt 2 sent"]


async def test_outbox_depth_in_metrics(make_client, fake, message_id):
    client = await make_client()
    media, _ = await photo(client, message_id)
    fake.plan("hang")
    delivery_id = await send(client, media["id"])
    in_flight = 'media_zapi_outbox_deliveries{state="sending"} 1.0'
    for _ in range(200):   # while the fake holds the request, the delivery is in flight
        text = await (await client.get("/metrics")).text()
        if in_flight in text:
            break
        await asyncio.sleep(0.05)
    assert in_flight in text
    assert 'media_zapi_outbox_deliveries{state="queued"} 0.0' in text
    await wait_delivery(client, delivery_id)   # the timeout makes it unknown: finished
    text = await (await client.get("/metrics")).text()
    assert 'media_zapi_outbox_deliveries{state="sending"} 0.0' in text
