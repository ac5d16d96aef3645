"""POST /api/zapi/webhook/{secret}: the secret, the body rules, and what each callback
changes, after a real send through the fake Z-API."""
from __future__ import annotations

import asyncio
import json

import pytest

from server.zapi.callbacks import DeliveryFailed, StatusChanged, interpret, secret_matches
from tests.zapi_util import media_samples, upload, wait_delivery, zapi_changes

SECRET = "w" * 20 + "SECRET"
HOOK = f"/api/zapi/webhook/{SECRET}"


@pytest.fixture
async def zclient(server_for, fake):
    changes = zapi_changes(fake.server.port)
    assert changes["zapi__webhook_secret"] == SECRET
    return await server_for(**changes)


@pytest.fixture
async def zapi_caller(zclient, aiohttp_client):
    """What Z-API is: a client of the same server with no API key."""
    return await aiohttp_client(zclient.server)


@pytest.fixture
async def sent(zclient, fake, message_id) -> dict:
    data, ctype, name = media_samples()["audio"]
    media = await upload(zclient, message_id, data, ctype, name)
    resp = await zclient.post(f"/api/media/{media['id']}/send",
                              json={"phone": "5511999999999"})
    delivery = await wait_delivery(zclient, (await resp.json())["delivery_id"])
    assert delivery["state"] == "sent"
    return delivery


async def hook(client, event, path=HOOK):
    return await client.post(path, json=event)


async def state(client, delivery_id):
    return await (await client.get(f"/api/deliveries/{delivery_id}")).json()


def status_event(ids, status, moment=1_700_000_000_000):
    return {"type": "MessageStatusCallback", "status": status, "ids": ids,
            "momment": moment, "phone": "5511999999999", "instanceId": "X",
            "isGroup": False}


# -- the secret ----------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/api/zapi/webhook/wrong", f"/api/zapi/webhook/{SECRET[:-1]}",
    f"/api/zapi/webhook/{SECRET}x", f"/api/zapi/webhook/{SECRET.lower()}"])
async def test_wrong_secret_is_404(zapi_caller, zclient, sent, path):
    resp = await hook(zapi_caller, status_event([sent["zapi_message_id"]], "READ"), path)
    assert resp.status == 404
    assert (await resp.json())["error"] == "not_found"
    assert (await state(zclient, sent["id"]))["whatsapp_status"] is None


async def test_no_secret_configured_is_404_for_everything(client):
    resp = await hook(client, {"type": "DeliveryCallback"}, "/api/zapi/webhook/anything")
    assert resp.status == 404


@pytest.mark.parametrize("given,expected,ok", [
    ("abc", "abc", True), ("abc", "abd", False), ("ab", "abc", False), ("", "abc", False),
    ("abc", None, False), ("abc", "", False)])
def test_secret_matches(given, expected, ok):
    assert secret_matches(given, expected) is ok


# -- the body -------------------------------------------------------------------------

async def test_non_json_is_400(zapi_caller, zclient):
    resp = await zapi_caller.post(HOOK, data=b"type=DeliveryCallback",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_json"


@pytest.mark.parametrize("event", [
    {"type": "ReceivedCallback", "messageId": "X", "phone": "5511", "fromMe": False,
     "momment": 1, "image": {"imageUrl": "https://example.invalid/x.jpg"}},
    {"type": "PresenceChatCallback", "status": "AVAILABLE"},
    {"type": "SomethingNew", "nested": {"a": [1, 2]}},
    {"no": "type"}, [1, 2, 3], "a string", {"type": None}, 42, True,
    {"type": "MessageStatusCallback", "status": "READ_BY_ME", "ids": ["A"]},
    {"type": "MessageStatusCallback", "status": "READ", "ids": "not-a-list"},
    {"type": "DeliveryCallback", "zaapId": "unknown-id", "messageId": "unknown"},
])
async def test_unknown_or_irrelevant_events_are_200(zapi_caller, zclient, event):
    resp = await hook(zapi_caller, event)
    assert resp.status == 200
    assert (await resp.json())["updated"] == 0


# -- what callbacks change -------------------------------------------------------------

async def test_status_callbacks_keep_the_furthest_status(zapi_caller, zclient, sent):
    mid = sent["zapi_message_id"]
    assert (await (await hook(zapi_caller, status_event([mid], "RECEIVED", 1_700_000_001_000)))
            .json())["updated"] == 1
    d = await state(zclient, sent["id"])
    assert d["whatsapp_status"] == "RECEIVED"
    assert d["whatsapp_status_at"].startswith("2023-11-14T22:13:21")
    await hook(zapi_caller, status_event([mid], "SENT", 1_700_000_000_000))   # late, earlier
    assert (await state(zclient, sent["id"]))["whatsapp_status"] == "RECEIVED"
    await hook(zapi_caller, status_event(["other", mid], "PLAYED", 1_700_000_009_000))
    await hook(zapi_caller, status_event([mid], "PLAYED", 1_700_000_009_000))   # replay
    d = await state(zclient, sent["id"])
    assert d["whatsapp_status"] == "PLAYED" and d["state"] == "sent"


async def test_delivery_callback_with_error_fails_the_delivery(zapi_caller, zclient, sent):
    event = {"type": "DeliveryCallback", "phone": "5511999999999", "zaapId": sent["zaap_id"],
             "messageId": sent["zapi_message_id"], "instanceId": "X", "momment": 1,
             "error": "Phone number does not exist", "extra": {"ignored": True}}
    assert (await (await hook(zapi_caller, event)).json())["updated"] == 1
    d = await state(zclient, sent["id"])
    assert d["state"] == "failed" and d["last_error"] == "Phone number does not exist"
    assert (await (await hook(zapi_caller, event)).json())["updated"] == 0   # replay: no-op


async def media_zapi(pool, media_id):
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT zapi_sent, zapi_message_id FROM media_files "
                                  "WHERE id = $1", media_id)
    return row["zapi_sent"], row["zapi_message_id"]


async def test_zapi_sent_is_true_while_any_delivery_of_the_media_is_sent(
        zapi_caller, zclient, sent, pool):
    media_id = sent["media_id"]
    resp = await zclient.post(f"/api/media/{media_id}/send", json={"phone": "5521988887777"})
    second = await wait_delivery(zclient, (await resp.json())["delivery_id"])
    assert second["state"] == "sent"
    assert await media_zapi(pool, media_id) == (True, second["zapi_message_id"])

    def failed(d):
        return {"type": "DeliveryCallback", "zaapId": d["zaap_id"],
                "messageId": d["zapi_message_id"], "error": "Phone number does not exist"}
    # The latest sent one fails: the media is still sent, by the first delivery.
    assert (await (await hook(zapi_caller, failed(second))).json())["updated"] == 1
    assert await media_zapi(pool, media_id) == (True, sent["zapi_message_id"])
    # The last one fails too: nothing of it reached WhatsApp.
    assert (await (await hook(zapi_caller, failed(sent))).json())["updated"] == 1
    assert await media_zapi(pool, media_id) == (False, None)
    assert [d["state"] for d in (await (await zclient.get(
        f"/api/media/{media_id}/deliveries")).json())["deliveries"]] == ["failed", "failed"]
    # The media's JSON says the same.
    body = await (await zclient.get(f"/api/media/{media_id}")).json()
    assert (body["zapi_sent"], body["zapi_message_id"]) == (False, None)


async def test_delivery_callback_without_error_changes_nothing(zapi_caller, zclient, sent):
    event = {"type": "DeliveryCallback", "zaapId": sent["zaap_id"],
             "messageId": sent["zapi_message_id"]}
    assert (await hook(zapi_caller, event)).status == 200
    assert (await state(zclient, sent["id"]))["state"] == "sent"


# -- the interpretation, as a table ---------------------------------------------------------

@pytest.mark.parametrize("event,expected", [
    ({"type": "DeliveryCallback", "zaapId": "Z", "error": "bad media"},
     DeliveryFailed("Z", None, "bad media")),
    ({"type": "DeliveryCallback", "messageId": "M", "error": "x"},
     DeliveryFailed(None, "M", "x")),
    ({"type": "DeliveryCallback", "error": "x"}, None),
    ({"type": "DeliveryCallback", "zaapId": "Z", "error": ""}, None),
    ({"type": "DeliveryCallback", "zaapId": 5, "error": "x"}, None),
    ({"type": "MessageStatusCallback", "status": "SENT", "ids": []}, None),
    ({"type": "MessageStatusCallback", "status": "read", "ids": ["A"]}, None),
    ({"type": "MessageStatusCallback", "status": "READ", "ids": [1, None, "A"]}, "A"),
    ({"type": "ReceivedCallback"}, None),
])
def test_interpret(event, expected):
    got = interpret(event)
    if isinstance(expected, str):
        assert isinstance(got, StatusChanged) and got.ids == (expected,)
    else:
        assert got == expected


async def test_a_body_arriving_in_pieces_is_read_whole(zapi_caller, zclient, sent):
    event = json.dumps(status_event([sent["zapi_message_id"]], "READ")).encode()

    async def pieces():
        for i in range(0, len(event), 7):
            yield event[i:i + 7]
            await asyncio.sleep(0.01)

    resp = await zapi_caller.post(HOOK, data=pieces(), headers={"Content-Type": "application/json"})
    assert resp.status == 200 and (await resp.json())["updated"] == 1
    assert (await state(zclient, sent["id"]))["whatsapp_status"] == "READ"


async def test_oversized_body_is_413(zapi_caller, zclient):
    resp = await zapi_caller.post(HOOK, data=b"[" + b"1," * 600_000 + b"1]",
                              headers={"Content-Type": "application/json"})
    assert resp.status == 413


async def test_the_webhook_needs_no_key_but_the_delivery_routes_do(zapi_caller, sent):
    assert (await zapi_caller.get(f"/api/deliveries/{sent['id']}")).status == 401
    resp = await zapi_caller.post(f"/api/media/{sent['media_id']}/send",
                                  json={"phone": "5511999999999"})
    assert resp.status == 401
    resp = await hook(zapi_caller, status_event([sent["zapi_message_id"]], "READ"))
    assert resp.status == 200 and (await resp.json())["updated"] == 1
