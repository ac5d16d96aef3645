"""Headless Chromium plays a video from the service and seeks near its end.

The video is an MP4 whose index (moov) sits at the end, as encoders write it, so the
browser must read the start, jump to the end for the index, then seek: the requests
docs/http-serving.md describes for Chromium. Skipped, visibly, where Chromium is not
installed (.ci/run installs it when it can).
"""
from __future__ import annotations

import asyncio
import html
import re
import shutil
from typing import NamedTuple

import aiohttp
import pytest
from aiohttp import web

from server.security import OPEN, add
from server.store.media import STORE
from tests.media import noise_mp4

WIDTH, HEIGHT, FPS, FRAMES = 320, 240, 10, 60
PAGE = """<!doctype html><html><body><pre id="out">start</pre>
<video id="v" muted preload="auto" src="{src}"></video>
<script>
const v = document.getElementById('v'), out = document.getElementById('out');
const log = (m) => {{ out.textContent += "\\n" + m; }};
v.addEventListener('loadedmetadata', () => {{
  log('meta ' + v.duration + ' ' + v.videoWidth + 'x' + v.videoHeight);
  v.currentTime = v.duration - 0.5;
}});
v.addEventListener('seeked', () => {{
  log('seeked ' + v.currentTime + ' ' + v.readyState);
  v.play().then(() => log('playing')).catch(e => log('play-error ' + e));
}});
v.addEventListener('error', () => log('error ' + (v.error && v.error.code)));
</script></body></html>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("Chromium is not installed")


def mp4_h264() -> bytes:
    # Noise at lossless: a few MB, many chunks.
    data = noise_mp4("libx264", width=WIDTH, height=HEIGHT, fps=FPS, frames=FRAMES,
                     options={"crf": "0"})
    assert data.rfind(b"moov") > len(data) * 0.9
    return data


async def test_chromium_plays_and_seeks_with_ranges(server_for, tmp_path):
    browser = chromium()
    data = mp4_h264()
    seen: list[Seen] = []

    async def record(request, response):
        if request.path.startswith("/api/media/serve/"):
            h = request.headers
            seen.append(Seen(h.get("Range"), h.get("If-Range"), h.get("If-None-Match"),
                             response.status, response.headers.get("Content-Range")))

    page: dict[str, str] = {}

    async def test_page(request):   # same origin as the media, like the chat web app
        return web.Response(text=page["html"], content_type="text/html")

    def setup(app: web.Application) -> None:
        app.on_response_prepare.append(record)
        # Declared open: an undeclared route would need an admin key, which
        # Chromium lacks.
        add(app, "GET", "/test-page", test_page, scope=OPEN)

    client = await server_for(setup=setup)
    message_id = await client.app[STORE].create_message()
    form = aiohttp.FormData()
    form.add_field("message_id", str(message_id))
    form.add_field("file", data, filename="clip.mp4", content_type="video/mp4")
    resp = await client.post("/api/media/upload-production", data=form)
    assert resp.status == 201
    meta = await resp.json()
    assert "&sig=" in meta["url"]   # the browser holds no key: the signed URL is all it has
    page["html"] = PAGE.format(src=html.escape(meta["url"]))

    proc = await asyncio.create_subprocess_exec(
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
        "--autoplay-policy=no-user-gesture-required", "--virtual-time-budget=15000",
        "--dump-dom", str(client.make_url("/test-page")),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 90)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    match = re.search(r'<pre id="out">(.*?)</pre>', out.decode(), re.S)
    assert match, out[-2000:]
    events = html.unescape(match.group(1)).splitlines()
    assert f"meta {FRAMES / FPS:g} {WIDTH}x{HEIGHT}" in events, events
    assert f"seeked {FRAMES / FPS - 0.5:g} 4" in events, events   # HAVE_ENOUGH_DATA
    assert "playing" in events, events

    # What Chromium asked: the start, open-ended; then later parts of the file (the
    # index at the end, the seek). Each range is answered 206 with exactly the bytes
    # asked for. A browser may also revalidate a part it has cached (Range with
    # If-None-Match): RFC 9110 §13.2.2 evaluates If-None-Match before Range, so a
    # matching tag is rightly a 304 (Chromium 156 does this). Never a 200 or an error.
    etag = f'"{meta["sha256"]}"'
    first = seen[0]
    assert first.range == "bytes=0-" and first.status == 206, seen
    for s in seen:
        assert s.status in (206, 304), seen
        if s.status == 304:
            assert s.if_none_match == etag, seen
        else:
            assert s.content_range == expected_content_range(s.range, len(data)), seen
    later = [range_start(s.range) for s in seen[1:] if s.range and s.status == 206]
    assert any(start > len(data) // 2 for start in later), seen
    # Its later requests carry our strong ETag as their validator (If-Range, so its
    # cache may combine the parts, or If-None-Match), and never another tag.
    assert all(v in (None, etag) for s in seen for v in (s.if_range, s.if_none_match)), seen
    assert any(etag in (s.if_range, s.if_none_match) for s in seen[1:]), seen


class Seen(NamedTuple):
    range: str | None
    if_range: str | None
    if_none_match: str | None
    status: int
    content_range: str | None


def range_start(header: str) -> int:
    return int(header[len("bytes="):].split("-")[0])


def expected_content_range(header: str | None, size: int) -> str:
    """The Content-Range a single ``bytes=a-b`` or ``bytes=a-`` asks for."""
    assert header and header.startswith("bytes=") and "," not in header, header
    first, _, last = header[len("bytes="):].partition("-")
    end = size - 1 if last == "" else min(int(last), size - 1)
    return f"bytes {int(first)}-{end}/{size}"


@pytest.mark.parametrize("header, size, expected", [
    ("bytes=0-", 100, "bytes 0-99/100"),
    ("bytes=10-19", 100, "bytes 10-19/100"),
    ("bytes=90-200", 100, "bytes 90-99/100"),
])
def test_expected_content_range(header, size, expected):
    assert expected_content_range(header, size) == expected
