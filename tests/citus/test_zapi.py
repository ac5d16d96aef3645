"""A Z-API delivery from a distributed store: the outbox (on the coordinator) sends a
media whose bytes live on a worker to the fake Z-API and marks the media sent; a
failure callback afterwards marks it not sent."""
from __future__ import annotations

import dataclasses

from tests.apps import build_app, start_client
from tests.dbutil import create_api_key, new_message
from tests.fake_zapi import FakeZapi
from tests.zapi_util import media_samples, upload, wait_delivery, zapi_changes


async def test_a_delivery_is_sent_with_the_stored_bytes(distributed, citus_settings,
                                                       aiohttp_server):
    fake = FakeZapi()
    fake.server = await aiohttp_server(fake.app, host="127.0.0.1")
    settings = dataclasses.replace(citus_settings, **zapi_changes(fake.server.port))
    key = await create_api_key(distributed.dsn, "admin")
    client = await start_client(build_app(settings, distributed.dsn), key=key)
    try:
        data, ctype, name = media_samples()["image"]
        media = await upload(client, await new_message(distributed.dsn), data, ctype, name)
        resp = await client.post(f"/api/media/{media['id']}/send",
                                 json={"phone": "5511999999999"})
        assert resp.status == 202, await resp.text()
        delivery = await wait_delivery(client, (await resp.json())["delivery_id"])
        assert delivery["state"] == "sent", delivery
        [got] = fake.received
        assert got.endpoint == "send-image"
        assert got.media_bytes() == ("image/jpeg", data)
        assert (await (await client.get(f"/api/media/{media['id']}")).json())["zapi_sent"]
        # WhatsApp then fails to deliver it: the delivery fails and, with no other one
        # sent, the media is no longer marked sent (the row lock and the recount run
        # on the media's worker, the deliveries on the coordinator).
        event = {"type": "DeliveryCallback", "zaapId": delivery["zaap_id"],
                 "messageId": delivery["zapi_message_id"], "error": "no such phone"}
        hook = await client.post(f"/api/zapi/webhook/{settings.zapi_webhook_secret}",
                                 json=event)
        assert hook.status == 200 and (await hook.json())["updated"] == 1
        after = await (await client.get(f"/api/media/{media['id']}")).json()
        assert after["zapi_sent"] is False and after["zapi_message_id"] is None
    finally:
        await client.close()
