"""A fake Z-API: a real HTTP server on loopback that follows ../shared/zapi.md.

It checks what the real one documents (the instance and token in the path, the
Client-Token header, Content-Type: application/json, POST only, the endpoints and their
media field), answers ``{"zaapId", "messageId", "id"}``, records every request it got,
and can be told to misbehave for the next requests: ``fake.plan(...)`` with any of
``"5xx"``, ``"4xx"``, ``"429"``, ``"no_message_id"``, ``"hang"`` (longer than the
client's timeout; the request is recorded: Z-API got it, the answer never came).
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import json
import re

from aiohttp import web

INSTANCE = "3C1FAKEINSTANCE7"
TOKEN = "F4KEPATHTOKEN9A0B"
CLIENT_TOKEN = "Fc1ientSecurityT0ken"

_MEDIA_FIELD = {"send-image": "image", "send-video": "video", "send-audio": "audio",
                "send-document": "document"}
_DATA_URI = re.compile(r"data:([a-z0-9.+/-]+);base64,(.*)", re.S)


@dataclasses.dataclass
class Received:
    endpoint: str              # "send-image", "send-document/pdf", ...
    headers: dict[str, str]
    body: dict
    answered: str              # what the fake did: "ok" or the planned failure
    message_id: str | None = None   # the messageId it answered with, if any
    raw_length: int = 0             # bytes of body actually received

    @property
    def media_field(self) -> str:
        return _MEDIA_FIELD[self.endpoint.split("/")[0]]

    def media_bytes(self) -> tuple[str, bytes]:
        """The data URI's type and decoded bytes."""
        m = _DATA_URI.fullmatch(self.body[self.media_field])
        assert m, "the media field is not a base64 data URI"
        return m.group(1), base64.b64decode(m.group(2), validate=True)


class FakeZapi:
    def __init__(self, *, hang_seconds: float = 60.0, delay: float = 0.0):
        self.received: list[Received] = []
        self.refused: list[tuple[int, str]] = []   # requests refused before recording
        self._plan: list[str] = []
        self._ids = itertools.count(1)
        self.hang_seconds = hang_seconds
        self.delay = delay                          # before every answer
        self.in_flight = 0
        self.max_in_flight = 0
        self.app = web.Application(client_max_size=256 * 1024 * 1024)
        self.app.router.add_post("/instances/{instance}/token/{token}/{endpoint:.+}",
                                 self.send)

    def plan(self, *behaviours: str) -> None:
        self._plan.extend(behaviours)

    def _refuse(self, status: int, error: str) -> web.Response:
        self.refused.append((status, error))
        return web.json_response({"error": error}, status=status)

    async def send(self, request: web.Request) -> web.StreamResponse:
        mi = request.match_info
        if mi["instance"] != INSTANCE or mi["token"] != TOKEN:
            return self._refuse(400, "Instance not found")
        if "Client-Token" not in request.headers:
            return self._refuse(400, "null not allowed")
        if request.headers["Client-Token"] != CLIENT_TOKEN:
            return self._refuse(403, "Client-Token is not valid")
        if request.content_type != "application/json":
            return self._refuse(415, "Unsupported Media Type")
        endpoint = mi["endpoint"]
        kind = endpoint.split("/")[0]
        if kind not in _MEDIA_FIELD or (kind == "send-document") != ("/" in endpoint):
            return self._refuse(404, "endpoint not found")
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return self._refuse(400, "invalid JSON")
        if not isinstance(body.get("phone"), str) or not body.get(_MEDIA_FIELD[kind]):
            return self._refuse(400, "phone and the media are required")
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            behaviour = self._plan.pop(0) if self._plan else "ok"
            rec = Received(endpoint, dict(request.headers), body, behaviour,
                           raw_length=len(raw))
            self.received.append(rec)
            if self.delay:
                await asyncio.sleep(self.delay)
            return await self._answer(behaviour, rec)
        finally:
            self.in_flight -= 1

    async def _answer(self, behaviour: str, rec: Received) -> web.Response:
        if behaviour == "5xx":
            return web.json_response({"error": "Internal server error"}, status=503)
        if behaviour == "4xx":
            return web.json_response({"error": "Phone number is not valid"}, status=400)
        if behaviour == "429":
            return web.json_response({"error": "Too many requests"}, status=429,
                                     headers={"Retry-After": "1"})
        if behaviour == "no_message_id":
            return web.json_response({"zaapId": "Z" + str(next(self._ids))})
        if behaviour == "hang":
            await asyncio.sleep(self.hang_seconds)
        n = next(self._ids)
        message_id = rec.message_id = f"3EB0{n:016X}"
        return web.json_response({"zaapId": f"39999842637380{n:04d}CD6ECDE9VDWSA",
                                  "messageId": message_id, "id": message_id})

    def succeeded(self) -> list[Received]:
        return [r for r in self.received if r.answered == "ok"]
