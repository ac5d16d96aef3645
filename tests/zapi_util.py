"""Shared pieces of the Z-API tests: media of each type, settings pointing at the fake,
waiting for a delivery to settle."""
from __future__ import annotations

import asyncio
import os

from server.settings import replace_settings
from tests import fake_zapi
from tests.media import jpeg_bytes

FINAL = ("sent", "failed", "unknown")


def media_samples(size: int = 10_000) -> dict[str, tuple[bytes, str, str]]:
    """media_type -> (bytes, upload Content-Type, file name); sizes not a multiple of 3
    and over several 3 KiB chunks, so padding and chunk joins are exercised."""
    def pad(head: bytes) -> bytes:
        return head + os.urandom(size - len(head))
    return {
        "image": (jpeg_bytes(size + 1), "image/jpeg", "photo.jpg"),
        "video": (pad(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"), "video/mp4",
                  "clip.mp4"),
        "audio": (pad(b"OggS\x00\x02" + b"\x00" * 22 + b"\x01\x1eOpusHead"), "audio/ogg",
                  "voice.ogg"),
        "document": (pad(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"), "application/pdf",
                     "relatório final.pdf"),
    }


def zapi_changes(port: int, **changes) -> dict:
    """Settings changes (for conftest's ``server_for``) pointing at the fake on ``port``."""
    # The samples are stand-ins (a signature and random bytes), which media processing
    # would rightly refuse: these tests are about sending, so they store files as sent.
    base = dict(zapi__base_url=f"http://127.0.0.1:{port}",
                zapi__instance_id=fake_zapi.INSTANCE, zapi__token=fake_zapi.TOKEN,
                zapi__client_token=fake_zapi.CLIENT_TOKEN,
                zapi__webhook_secret="w" * 20 + "SECRET", zapi__timeout=1.0,
                zapi__lease_seconds=3.0, zapi__retry_base=0.05, processing__enabled=False)
    return {**base, **changes}


def zapi_settings(settings, port: int, **changes):
    return replace_settings(settings, **zapi_changes(port, **changes))


async def upload(client, message_id: int, data: bytes, ctype: str, name: str) -> dict:
    resp = await client.post(f"/api/media/upload-production?message_id={message_id}"
                             f"&filename={name}", data=data,
                             headers={"Content-Type": ctype})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def wait_delivery(client, delivery_id: int, states=FINAL, timeout: float = 15) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        resp = await client.get(f"/api/deliveries/{delivery_id}")
        assert resp.status == 200
        body = await resp.json()
        if body["state"] in states:
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"delivery still {body['state']}: {body}")
        await asyncio.sleep(0.05)
