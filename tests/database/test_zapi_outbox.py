"""The outbox's pieces without HTTP: pure tables (backoff, request building, outcome
classification, phones) and the claim/lease statements against the real schema."""
from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import pytest

from server.settings import Settings
from server.store.sqlfiles import Q
from server.zapi.client import base64_length, build_request, classify, classify_exception
from server.zapi.outbox import MAX_BACKOFF, Outbox, backoff
from server.zapi.phone import parse_phone
from tests.media import jpeg_bytes

# -- pure -------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt,base,rand,expected", [
    (1, 2.0, 0.5, 2.0), (2, 2.0, 0.5, 4.0), (3, 2.0, 0.5, 8.0), (5, 2.0, 0.5, 32.0),
    (1, 2.0, 0.0, 1.0), (1, 2.0, 0.999, 2.998), (30, 2.0, 0.5, MAX_BACKOFF),
    (0, 2.0, 0.5, 2.0), (40, 2.0, 0.0, MAX_BACKOFF / 2)])
def test_backoff(attempt, base, rand, expected):
    assert backoff(attempt, base, rand) == pytest.approx(expected)


@pytest.mark.parametrize("status,body,kind", [
    (200, {"zaapId": "Z", "messageId": "M", "id": "M"}, "sent"),
    (201, {"messageId": "M"}, "sent"),
    (200, {"zaapId": "Z"}, "failed"),
    (200, {"messageId": ""}, "failed"),
    (200, {"messageId": 5}, "failed"),
    (200, None, "failed"),
    (200, ["M"], "failed"),
    (400, {"error": "null not allowed"}, "failed"),
    (403, {"error": "1.2.3.4 not allowed"}, "failed"),
    (404, None, "failed"), (405, None, "failed"), (415, None, "failed"),
    (429, None, "rate_limited"),
    (500, None, "retry"), (502, {"error": "bad gateway"}, "retry"), (503, None, "retry"),
    (302, None, "failed"),
])
def test_classify(status, body, kind):
    out = classify(status, body)
    assert out.kind == kind and out.http_status == status
    if kind == "sent":
        assert out.message_id == "M"
    if isinstance(body, dict) and "error" in body:
        assert body["error"] in out.error


def test_classify_retry_after():
    assert classify(429, None, "7").retry_after == 7.0
    assert classify(429, None, "soon").retry_after is None
    assert classify(429, None, "99999").retry_after is None


@pytest.mark.parametrize("exc,kind", [
    (aiohttp.ClientConnectorError(aiohttp.client_reqrep.ConnectionKey(
        "h", 1, False, True, None, None, None), OSError(111, "refused")), "retry"),
    (aiohttp.ConnectionTimeoutError(), "retry"),
    (aiohttp.SocketTimeoutError(), "unknown"),
    (asyncio.TimeoutError(), "unknown"),
    (aiohttp.ServerDisconnectedError(), "unknown"),
    (aiohttp.ClientPayloadError(), "unknown"),
    (ConnectionResetError(), "unknown"),
])
def test_classify_exception(exc, kind):
    out = classify_exception(exc)
    assert out.kind == kind
    assert "http" not in out.error.lower()   # never a URL (it carries the credentials)


@pytest.mark.parametrize("media_type,ext,endpoint,field", [
    ("image", "jpg", "send-image", "image"), ("video", "mp4", "send-video", "video"),
    ("audio", "ogg", "send-audio", "audio"), ("document", "pdf", "send-document/pdf",
                                              "document"),
    ("document", "DOCX", "send-document/docx", "document"),
    ("document", "", "send-document/bin", "document"),
    ("document", "../x", "send-document/x", "document"),
])
def test_build_request(media_type, ext, endpoint, field):
    raw = jpeg_bytes(1000)
    b64 = base64.b64encode(raw)
    req = build_request(media_type=media_type, extension=ext, mime_type="image/jpeg",
                        original_name='a "quoted" name.pdf', phone="5511999999999",
                        caption='say "hi"\n', reply_to="R1", media_url=None)
    assert req.endpoint == endpoint
    body = json.loads(req.prefix + b64 + req.suffix)
    assert body[field] == "data:image/jpeg;base64," + b64.decode()
    assert body["phone"] == "5511999999999" and body["messageId"] == "R1"
    assert body.get("caption") == (None if media_type == "audio" else 'say "hi"\n')
    assert body.get("fileName") == ('a "quoted" name.pdf' if media_type == "document"
                                    else None)


def test_build_request_url_mode():
    req = build_request(media_type="video", extension="mp4", mime_type="video/mp4",
                        original_name="v.mp4", phone="5511999999999", caption=None,
                        reply_to=None, media_url="https://m.example/api/media/serve/3")
    assert req.suffix == b""
    assert json.loads(req.prefix) == {"phone": "5511999999999",
                                      "video": "https://m.example/api/media/serve/3"}


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 6, 1000, 261_120, 261_121])
def test_base64_length(n):
    assert base64_length(n) == len(base64.b64encode(b"\0" * n))


@pytest.mark.parametrize("value,ok", [
    ("5511999999999", True), ("1234567890", True), ("123456789012345", True),
    ("123456789", False), ("1234567890123456", False), ("+5511999999999", False),
    ("55 11 99999 9999", False), ("5511-99999-9999", False), ("", False), (None, False),
    (5511999999999, False), ("120363019502650977-group", True),
    ("5511999999999-1623281429-group", True), ("-group", False), ("abc-group", False),
    ("120363019502650977-GROUP", False), ("5511999999999\n", False),
    ("٥٥١١٩٩٩٩٩٩٩٩٩", False),   # Arabic-Indic digits: isdigit() but not Z-API's
])
def test_parse_phone(value, ok):
    got = parse_phone(value)
    assert (got is not None) is ok and (got is None or got == value)


# -- claims and leases, against the schema -------------------------------------------------

@pytest.fixture
async def media_id(store, message_id):
    up = await store.begin_upload(file_name="x.jpg", original_name="x.jpg",
                                  mime_type="image/jpeg", media_type="image")
    await up.write(jpeg_bytes(5000))
    return (await up.finish(message_id)).id


@pytest.fixture
def outbox(store):
    return Outbox(store, Settings(), None)


async def claim(pool, n=10, lease=60.0, instance=None):
    async with pool.acquire() as conn:
        async with conn.transaction():
            await Q.outbox_claim_lock.fetchval(conn)
            return await Q.claim_deliveries.fetch(conn, max_in_flight=n, lease_seconds=lease,
                                                  instance_id=instance)


async def expire_leases(pool):
    # Test-only: what the passing of ZAPI_LEASE_SECONDS does.
    async with pool.acquire() as conn:
        await conn.execute("UPDATE zapi_deliveries SET lease_until = now() - interval '1 s' "
                           "WHERE state = 'sending'")


async def recover(pool, retry_unknown=False, dead=60.0):
    async with pool.acquire() as conn:
        return {r["id"]: r["state"] for r in
                await Q.recover_expired_claims.fetch(conn, retry_unknown=retry_unknown,
                                                     dead_seconds=dead)}


async def test_claim_respects_the_in_flight_cap_and_never_hands_out_twice(pool, outbox,
                                                                          media_id):
    ids = [(await outbox.enqueue(media_id, "5511999999999", None, None))["id"]
           for _ in range(5)]
    first = await claim(pool, n=2)
    assert [r["id"] for r in first] == ids[:2]
    assert await claim(pool, n=2) == []          # two alive already
    more = await claim(pool, n=3)
    assert [r["id"] for r in more] == ids[2:3]
    assert all(r["attempts"] == 1 for r in first + more)


async def test_concurrent_claims_split_the_rows(pool, outbox, media_id):
    for _ in range(20):
        await outbox.enqueue(media_id, "5511999999999", None, None)
    batches = await asyncio.gather(*(claim(pool, n=20) for _ in range(4)))
    got = [r["id"] for b in batches for r in b]
    assert len(got) == len(set(got)) == 20


async def test_expired_claim_never_posted_is_queued_again(pool, outbox, media_id):
    d = await outbox.enqueue(media_id, "5511999999999", None, None)
    [row] = await claim(pool)
    await expire_leases(pool)
    assert await recover(pool) == {d["id"]: "queued"}
    got = await outbox.get(d["id"])
    assert got["state"] == "queued" and "before the request" in got["last_error"]
    # The dead worker's token is worthless now.
    async with pool.acquire() as conn:
        assert await Q.mark_posted.fetchval(conn, id=d["id"],
                                            claim_token=row["claim_token"]) is None


async def test_expired_claim_after_posting_is_unknown(pool, outbox, media_id):
    d = await outbox.enqueue(media_id, "5511999999999", None, None)
    [row] = await claim(pool)
    async with pool.acquire() as conn:
        assert await Q.mark_posted.fetchval(conn, id=d["id"], claim_token=row["claim_token"])
    await expire_leases(pool)
    assert await recover(pool) == {d["id"]: "unknown"}
    assert await claim(pool) == []                      # not posted again
    # A worker that was merely slow still records the truth if Z-API answered.
    async with pool.acquire() as conn:
        assert await Q.delivery_sent.fetchval(
            conn, id=d["id"], claim_token=row["claim_token"], zaap_id="Z",
            zapi_message_id="M", http_status=200) == media_id
    assert (await outbox.get(d["id"]))["state"] == "sent"


async def test_expired_claim_after_posting_retried_when_configured(pool, outbox, media_id):
    d = await outbox.enqueue(media_id, "5511999999999", None, None)
    [row] = await claim(pool)
    async with pool.acquire() as conn:
        await Q.mark_posted.fetchval(conn, id=d["id"], claim_token=row["claim_token"])
    await expire_leases(pool)
    assert await recover(pool, retry_unknown=True) == {d["id"]: "queued"}
    [again] = await claim(pool)
    assert again["attempts"] == 2 and again["claim_token"] != row["claim_token"]
    async with pool.acquire() as conn:   # the old claim cannot write the outcome
        assert await Q.delivery_finished.fetchval(
            conn, id=d["id"], claim_token=row["claim_token"], state="failed", error="x",
            http_status=None) is None


async def test_live_leases_are_left_alone(pool, outbox, media_id):
    await outbox.enqueue(media_id, "5511999999999", None, None)
    await claim(pool)
    assert await recover(pool) == {}


async def test_deleting_the_media_removes_its_deliveries(pool, store, outbox, media_id):
    d = await outbox.enqueue(media_id, "5511999999999", None, None)
    await store.delete(media_id)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM zapi_deliveries") == 0
    with pytest.raises(Exception):
        await outbox.get(d["id"])


async def test_claims_of_an_instance_that_stopped_beating_are_recovered_early(
        pool, outbox, media_id):
    import uuid
    alive, dead = uuid.uuid4(), uuid.uuid4()
    d1 = await outbox.enqueue(media_id, "5511999999999", None, None)
    d2 = await outbox.enqueue(media_id, "5511999999999", None, None)
    [c1] = await claim(pool, n=1, instance=alive)
    [c2] = await claim(pool, n=2, instance=dead)
    async with pool.acquire() as conn:
        await Q.mark_posted.fetchval(conn, id=d2["id"], claim_token=c2["claim_token"])
        # Test-only: the live instance beats; the dead one's last beat is long gone;
        # both claims are older than the dead time, their leases still running.
        await conn.execute("INSERT INTO media_instances (id, hostname, pid, last_seen) "
                           "VALUES ($1, 'a', 1, now()), ($2, 'b', 2, now() - interval '1 h')",
                           alive, dead)
        await conn.execute("UPDATE zapi_deliveries SET updated_at = now() - interval '10 s'")
    assert await recover(pool, dead=5.0) == {d2["id"]: "unknown"}
    assert (await outbox.get(d1["id"]))["state"] == "sending"


async def test_a_fresh_claim_is_not_taken_for_dead_before_its_first_beat(
        pool, outbox, media_id):
    import uuid
    await outbox.enqueue(media_id, "5511999999999", None, None)
    await claim(pool, instance=uuid.uuid4())     # no media_instances row yet
    assert await recover(pool, dead=5.0) == {}
