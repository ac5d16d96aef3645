import aiohttp

from tests.media import jpeg_bytes


async def test_upload_then_serve_round_trip(client, message_id):
    data = jpeg_bytes(50_000)
    form = aiohttp.FormData()
    form.add_field("message_id", str(message_id))
    form.add_field("file", data, filename="a.jpg", content_type="image/jpeg")
    resp = await client.post("/api/media/upload-production", data=form)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    got = await client.get(body["url"])
    assert got.status == 200
    assert await got.read() == data
