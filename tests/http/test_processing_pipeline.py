"""The pipeline as a whole: limits, the allow-list, the switch, spool files, a fuzz pass
over corrupted samples, and reads staying fast while photos are being processed."""
import asyncio
import hashlib
import logging
import os
import random
import statistics
import tempfile
import time

import pytest

from tests.media import (
    animated_gif,
    av_sample,
    exif_photo,
    jpeg_bytes,
    photo_bytes,
    png_bytes,
)
from tests.http.test_processing_images import assert_refused, count, created, fetch, post


def spool_files() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("media-spool-")}


async def test_per_type_limit_is_413_while_streaming(processing_client_with, pool, message_id):
    client = await processing_client_with(processing__max_image_bytes=20_000)
    resp = await post(client, message_id, jpeg_bytes(200_000), name="big.jpg")
    await assert_refused(resp, pool, 413, "payload_too_large", "image", "20000")
    # ... while other kinds keep their own limit.
    await created(await post(client, message_id, b"x,y\n" * 10_000, name="t.csv"))


async def test_allowed_types_setting(processing_client_with, pool, message_id):
    client = await processing_client_with(processing__allowed_types=frozenset({"image/jpeg"}))
    resp = await post(client, message_id, png_bytes(), name="a.png")
    await assert_refused(resp, pool, 415, "unsupported_media_type", "image/png")
    await created(await post(client, message_id, photo_bytes(40, 30)))


async def test_processing_off_stores_as_sent_without_checks(processing_client_with, message_id):
    client = await processing_client_with(processing__enabled=False)
    fake = jpeg_bytes(100)     # a JPEG signature and noise: no image at all
    body = await created(await post(client, message_id, fake))
    assert await fetch(client, body["url"]) == fake
    assert body["dimensions"] is None and body["variants"] == {}
    photo = exif_photo()
    body = await created(await post(client, message_id, photo))
    assert await fetch(client, body["url"]) == photo and body["is_compressed"] is False


async def test_spool_files_are_removed(processing_client, pool, message_id, tmp_path,
                                       monkeypatch):
    # A private temporary folder: other test runs on the machine spool files too.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = spool_files()
    assert before == set()
    await created(await post(processing_client, message_id, exif_photo()))
    await created(await post(processing_client, message_id,
                             av_sample("ogg", audio="libopus", seconds=1), name="v.ogg"))
    resp = await post(processing_client, message_id, exif_photo()[:-300], name="cut.jpg")
    assert resp.status == 422
    clip = av_sample("mp4", video="libx264", audio="aac", seconds=3)
    resp = await post(processing_client, message_id, clip[:len(clip) // 2], name="cut.mp4")
    assert resp.status == 422
    assert spool_files() - before == set()


# -- fuzz -------------------------------------------------------------------------------

def _samples() -> dict[str, bytes]:
    return {
        "photo.jpg": exif_photo(90, 60),
        "shot.png": photo_bytes(50, 40, fmt="PNG"),
        "anim.gif": animated_gif(4),
        "pic.webp": photo_bytes(50, 40, fmt="WEBP"),
        "clip.mp4": av_sample("mp4", video="libx264", audio="aac", seconds=1.5),
        "clip.webm": av_sample("webm", video="libvpx", seconds=1.5),
        "voice.ogg": av_sample("ogg", audio="libopus", seconds=1.5),
        "song.mp3": av_sample("mp3", audio="libmp3lame", seconds=1.5),
        "list.csv": b"name,qty\n" + b"".join(b"item%d,%d\n" % (i, i) for i in range(200)),
    }


def corrupt(data: bytes, rng: random.Random) -> bytes:
    """One random corruption: flipped bytes, a cut, a hole, a repeated or zeroed span."""
    b = bytearray(data)
    how = rng.choice(["flip", "flip", "truncate", "hole", "zero", "repeat", "header"])
    if how == "flip":
        for _ in range(rng.randint(1, 20)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif how == "truncate":
        del b[rng.randint(1, len(b) - 1):]
    elif how == "hole":
        i = rng.randrange(len(b))
        del b[i:i + rng.randint(1, 2000)]
    elif how == "zero":
        i = rng.randrange(len(b))
        n = rng.randint(1, 500)
        b[i:i + n] = bytes(len(b[i:i + n]))
    elif how == "repeat":
        i = rng.randrange(len(b))
        b[i:i] = b[i:i + rng.randint(1, 4000)] * rng.randint(2, 50)
    else:   # the first bytes, where sizes and counts live
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(min(len(b), 64))] = rng.randrange(256)
    return bytes(b) or b"\0"


@pytest.mark.slow
async def test_fuzz_corrupted_samples_never_500_hang_or_leave_a_partial_file(
        processing_client, pool, message_id, caplog):
    caplog.set_level(logging.ERROR)
    seed = int(os.environ.get("FUZZ_SEED", "20261125"))
    rng = random.Random(seed)
    samples = _samples()
    names = sorted(samples)
    outcomes: dict[int, int] = {}
    stored = 0
    deadline = time.monotonic() + 240
    for case in range(300):
        if time.monotonic() > deadline:
            break
        name = names[case % len(names)]
        data = corrupt(samples[name], rng)
        resp = await asyncio.wait_for(
            post(processing_client, message_id, data, name=name), 30)   # a hang fails here
        outcomes[resp.status] = outcomes.get(resp.status, 0) + 1
        body = await resp.json()
        where = f"seed {seed} case {case} ({name})"
        assert resp.status in (201, 400, 413, 415, 422), f"{where}: {resp.status} {body}"
        if resp.status == 201:
            stored += 1
            # Accepted: whole, and what the record says is true of the stored bytes.
            got = await fetch(processing_client, body["url"])
            assert hashlib.sha256(got).hexdigest() == body["sha256"], where
            assert len(got) == body["file_size"], where
            for v in body["variants"].values():
                assert len(await fetch(processing_client, v["url"])) == v["file_size"], where
        else:
            assert set(body) == {"error", "message"}, where
        # Refused: nothing of it remains; accepted: exactly its own rows.
        assert await count(pool, "media_files") == stored, where
    assert sum(outcomes.values()) >= 100, outcomes   # bounded in time, but not trivially
    assert outcomes.get(422, 0) > 0, outcomes
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    print(f"\nfuzz seed {seed}: {outcomes}")


# -- behaviour under load ---------------------------------------------------------------

@pytest.mark.slow
async def test_small_reads_stay_fast_during_a_burst_of_photo_uploads(processing_client,
                                                                     message_id):
    small = await created(await post(processing_client, message_id,
                                     b"a,b\n" * 2000, name="small.csv"))
    url = small["url"]

    async def timed_read() -> float:
        t = time.perf_counter()
        resp = await processing_client.get(url, headers={"Range": "bytes=0-1023"})
        assert resp.status == 206 and len(await resp.read()) == 1024
        return time.perf_counter() - t

    async def reads_until(done: asyncio.Event | None, n: int) -> list[float]:
        out = []
        while (done is None and len(out) < n) or (done is not None and not done.is_set()):
            out.append(await timed_read())
            await asyncio.sleep(0.01)
        return out

    for _ in range(5):
        await timed_read()   # warm up
    idle = statistics.median(await reads_until(None, 60))

    photos = [photo_bytes(2400, 1800, quality=95) for _ in range(4)]
    done = asyncio.Event()

    async def burst():
        try:
            results = await asyncio.gather(*(
                post(processing_client, message_id, photos[i % 4], name=f"p{i}.jpg")
                for i in range(20)))
            for r in results:
                body = await created(r)
                assert body["is_compressed"] is True
        finally:
            done.set()

    burst_task = asyncio.create_task(burst())
    during = await reads_until(done, 0)
    await burst_task
    busy = statistics.median(during)
    print(f"\nsmall reads p50: idle {idle * 1000:.1f} ms, during 20 photo uploads "
          f"{busy * 1000:.1f} ms ({busy / idle:.1f}x, {len(during)} reads)")
    assert len(during) >= 10
    # A generous bound for a loaded 2-core machine: the CPU work is off the event loop.
    assert busy <= 8 * idle + 0.015


async def test_documents_are_checked_as_they_stream_and_only_archives_are_spooled(
        processing_client, pool, message_id, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen: set[str] = set()
    stop = asyncio.Event()

    async def watch():     # every spool file that exists at any moment of the uploads
        while not stop.is_set():
            seen.update(spool_files())
            await asyncio.sleep(0.005)

    watcher = asyncio.ensure_future(watch())
    try:
        pdf = b"%PDF-1.4\n" + os.urandom(3_000_000) + b"\n%%EOF\n"
        text = "linha com acentuação ✓\n".encode() * 100_000
        resp = await post(processing_client, message_id, pdf[:-20], name="cut.pdf")
        await assert_refused(resp, pool, 422, "invalid_media", "end-of-file marker")
        resp = await post(processing_client, message_id, text + b"\x00" + text, name="b.txt")
        await assert_refused(resp, pool, 422, "invalid_media", "control characters")
        resp = await post(processing_client, message_id, text + b"\xff\xfe" + text,
                          name="c.txt")
        await assert_refused(resp, pool, 422, "invalid_media", "UTF-8")
        body = await created(await post(processing_client, message_id, pdf, name="a.pdf"))
        assert await fetch(processing_client, body["url"]) == pdf
        body = await created(await post(processing_client, message_id, text, name="t.txt"))
        assert await fetch(processing_client, body["url"]) == text
        assert seen == set()        # none of them went through a temporary file
        stored = await count(pool, "media_files")
        archive = b"PK\x03\x04" + os.urandom(3_000_000)
        resp = await post(processing_client, message_id, archive, name="a.zip")
        assert resp.status == 422 and "archive" in (await resp.json())["message"]
        assert await count(pool, "media_files") == stored
        assert seen                  # the archive was spooled: its check reads the end
    finally:
        stop.set()
        await watcher
    assert spool_files() == set()
