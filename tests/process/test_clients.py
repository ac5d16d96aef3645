"""Real clients against a real server: curl resuming downloads, ffprobe reading a video.

The tools need a real TCP port: the aiohttp test server listens on loopback and each
tool runs as a subprocess (asyncio.create_subprocess_exec, so the event loop keeps
serving while it runs). A missing tool skips its test, visibly; nothing here passes
without the tool having run. Every response the serve route sends is recorded, so a
test also checks what the tool asked for and what it got (docs/http-serving.md,
"What real clients send").
"""
from __future__ import annotations

import asyncio
import json
import shutil
from typing import NamedTuple

import aiohttp
import pytest

from server.settings import SETTINGS
from server.store.media import STORE
from tests.media import jpeg_bytes, noise_mp4

SIZE = 50_000


class Seen(NamedTuple):
    method: str
    range: str | None
    if_range: str | None
    status: int


class Recorded(NamedTuple):
    client: object
    seen: list[Seen]


@pytest.fixture
async def recorded(server_for) -> Recorded:
    """The service, with every serve response noted as its headers go out. The test
    client uploads with an admin key; the tools read the signed URL, with no key."""
    seen: list[Seen] = []

    async def record(request, response):
        if request.path.startswith("/api/media/serve/"):
            seen.append(Seen(request.method, request.headers.get("Range"),
                             request.headers.get("If-Range"), response.status))

    client = await server_for(setup=lambda app: app.on_response_prepare.append(record))
    return Recorded(client, seen)


async def upload_url(client, data: bytes, filename: str, content_type: str) -> str:
    """Upload ``data``; the absolute loopback URL it is served at (signed)."""
    message_id = await client.app[STORE].create_message()
    form = aiohttp.FormData()
    form.add_field("message_id", str(message_id))
    form.add_field("file", data, filename=filename, content_type=content_type)
    resp = await client.post("/api/media/upload-production", data=form)
    assert resp.status == 201, await resp.text()
    url = (await resp.json())["url"]
    assert "&sig=" in url
    return str(client.make_url(url))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


async def run(*argv: str, timeout: float = 60) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out, err


# -- curl -C - (resume) --------------------------------------------------------------------

async def curl_resume(url: str, path) -> tuple[int, bytes]:
    """``curl -C - -o path url`` as a user types it. A 200 to a resume is exit 33
    ("server doesn't seem to support byte ranges"); a 416 is taken as "already complete"
    (exit 0, body ignored) only without --fail, which would turn it into exit 22."""
    rc, _, err = await run(tool("curl"), "--silent", "--show-error",
                           "--continue-at", "-", "--output", str(path), url)
    return rc, err


async def test_curl_resumes_a_partial_download_to_the_identical_file(recorded, tmp_path):
    data = jpeg_bytes(SIZE)
    url = await upload_url(recorded.client, data, "photo.jpg", "image/jpeg")
    chunk = recorded.client.app[SETTINGS].store.chunk_bytes
    # Cut anywhere, on chunk boundaries too: curl asks for bytes=<local size>-.
    for have in (1, chunk - 1, chunk, chunk + 1, 12_345, SIZE - 1):
        path = tmp_path / f"partial-{have}.jpg"
        path.write_bytes(data[:have])
        recorded.seen.clear()
        rc, err = await curl_resume(url, path)
        assert rc == 0, (have, err)
        assert path.read_bytes() == data, have
        assert recorded.seen == [Seen("GET", f"bytes={have}-", None, 206)]


async def test_curl_resume_of_a_complete_file_succeeds_on_416(recorded, tmp_path):
    data = jpeg_bytes(SIZE)
    url = await upload_url(recorded.client, data, "photo.jpg", "image/jpeg")
    path = tmp_path / "complete.jpg"
    path.write_bytes(data)
    rc, err = await curl_resume(url, path)
    assert rc == 0, err
    assert path.read_bytes() == data      # the 416's JSON body is not appended
    assert recorded.seen == [Seen("GET", f"bytes={SIZE}-", None, 416)]


# -- ffprobe -----------------------------------------------------------------------------

FRAMES, FPS, WIDTH, HEIGHT = 10, 10, 160, 120


def mp4_bytes() -> bytes:
    """One second of MPEG-4 video in MP4, its index at the end."""
    data = noise_mp4("mpeg4", width=WIDTH, height=HEIGHT, fps=FPS, frames=FRAMES,
                     bit_rate=4_000_000)
    assert data.rfind(b"moov") > len(data) // 2
    return data


async def test_ffprobe_reads_a_video_over_http_seeking_with_ranges(recorded):
    ffprobe = tool("ffprobe")
    data = mp4_bytes()
    url = await upload_url(recorded.client, data, "clip.mp4", "video/mp4")
    rc, out, err = await run(
        ffprobe, "-v", "error", "-count_frames", "-of", "json",
        "-show_entries", "stream=codec_name,width,height,nb_read_frames:format=duration",
        url)
    assert rc == 0, err
    assert err == b""
    info = json.loads(out)
    (stream,) = info["streams"]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("mpeg4", WIDTH, HEIGHT)
    assert int(stream["nb_read_frames"]) == FRAMES
    assert float(info["format"]["duration"]) == pytest.approx(FRAMES / FPS, abs=0.15)
    # ffmpeg starts with bytes=0- and seeks with open-ended ranges, each a 206.
    assert recorded.seen[0] == Seen("GET", "bytes=0-", None, 206)
    seeks = [s for s in recorded.seen if s.range and s.range != "bytes=0-"]
    assert seeks, recorded.seen
    assert all(s.status == 206 and s.range.endswith("-") for s in seeks), seeks


async def test_pyav_ffmpeg_http_client_decodes_a_video_seeking_with_ranges(recorded):
    # FFmpeg's own HTTP client, bundled in the PyAV wheel: the same requests as ffprobe,
    # but available wherever the test extra is installed (no system package).
    av = pytest.importorskip("av")
    data = mp4_bytes()
    url = await upload_url(recorded.client, data, "clip.mp4", "video/mp4")

    def decode() -> tuple[str, int, int, int]:
        with av.open(url, timeout=20) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
            return stream.codec_context.name, stream.width, stream.height, frames

    got = await asyncio.get_running_loop().run_in_executor(None, decode)
    assert got == ("mpeg4", WIDTH, HEIGHT, FRAMES)
    assert recorded.seen[0] == Seen("GET", "bytes=0-", None, 206)
    assert any(s.range not in (None, "bytes=0-") and s.status == 206 for s in recorded.seen)
