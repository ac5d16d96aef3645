"""A Z-API delivery from a distributed store: the outbox (on the coordinator) sends a
media whose bytes live on a worker to the fake Z-API, and marks the media sent."""
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
    finally:
        await client.close()
