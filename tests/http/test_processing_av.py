"""Audio and video through a real server: true durations, displayed dimensions, cover
art, waveforms, previews, the m4a variant, truncated files refused, and container
metadata (a phone's location) gone from what is stored, by upload and by tus."""
import hashlib
import io

import av
import pytest
from PIL import Image, ImageStat

from tests.media import (
    LOCATION,
    XMP_UUID,
    av_sample,
    packet_digests,
    with_cover_art,
    with_tags,
    with_unknown_audio,
)
from tests.http.test_processing_images import assert_refused, created, fetch, post
from tests.http.test_tus_processing import tus_upload

SECONDS = 2.5


@pytest.mark.parametrize("fmt,name,codecs,mime,media_type", [
    ("mp4", "clip.mp4", dict(video="libx264", audio="aac"), "video/mp4", "video"),
    ("webm", "clip.webm", dict(video="libvpx", audio="libopus"), "video/webm", "video"),
    ("ogg", "voice.ogg", dict(audio="libopus"), "audio/ogg", "audio"),
    ("mp3", "song.mp3", dict(audio="libmp3lame"), "audio/mpeg", "audio"),
    ("ipod", "memo.m4a", dict(audio="aac"), "audio/mp4", "audio"),
], ids=["mp4", "webm", "ogg-opus", "mp3", "m4a"])
async def test_duration_and_dimensions(processing_client, message_id, fmt, name, codecs,
                                       mime, media_type):
    sent = av_sample(fmt, seconds=SECONDS, **codecs)
    body = await created(await post(processing_client, message_id, sent, name=name))
    assert (body["mime_type"], body["media_type"]) == (mime, media_type)
    assert abs(body["duration_exact"] - SECONDS) <= 0.1
    assert body["duration"] == 3                       # whole seconds, as the column was
    # Remuxed without metadata: the same coded packets, not re-encoded.
    assert packet_digests(await fetch(processing_client, body["url"])) == packet_digests(sent)
    if media_type == "video":
        assert body["dimensions"] == {"width": 64, "height": 48}
        assert body["variants"]["preview"]["mime_type"] == "image/jpeg"
        assert "waveform" not in body
    else:
        assert body["dimensions"] is None
        assert "preview" not in body["variants"]
        wave = body["waveform"]
        assert len(wave) == 64 and all(0 <= v <= 100 for v in wave) and max(wave) == 100
        # The sample's tone grows louder: the bars say so.
        assert sum(wave[:16]) < sum(wave[-16:])


async def test_portrait_phone_video_is_portrait(processing_client, message_id):
    # Encoded landscape (64x48) with a 90-degree display matrix, as phones record.
    sent = av_sample("mp4", video="libx264", rotation=90, seconds=2)
    body = await created(await post(processing_client, message_id, sent, name="p.mp4"))
    assert body["dimensions"] == {"width": 48, "height": 64}
    preview = body["variants"]["preview"]
    assert preview["dimensions"]["height"] > preview["dimensions"]["width"]
    im = Image.open(io.BytesIO(await fetch(processing_client, preview["url"])))
    assert im.height > im.width


async def test_video_preview_is_a_frame_about_a_second_in(processing_client, message_id):
    # The sample's first frame is black; later ones are not.
    sent = av_sample("mp4", video="libx264", seconds=3)
    body = await created(await post(processing_client, message_id, sent, name="v.mp4"))
    preview = body["variants"]["preview"]
    data = await fetch(processing_client, preview["url"])
    assert len(data) == preview["file_size"] < 20_000
    im = Image.open(io.BytesIO(data)).convert("RGB")
    assert sum(ImageStat.Stat(im).mean) > 100


async def test_cover_art_is_not_a_video(processing_client, message_id):
    sent = with_cover_art(av_sample("mp3", audio="libmp3lame", seconds=SECONDS))
    body = await created(await post(processing_client, message_id, sent, name="s.mp3"))
    assert body["media_type"] == "audio" and body["dimensions"] is None
    assert abs(body["duration_exact"] - SECONDS) <= 0.1
    assert "m4a" not in body["variants"]


async def test_voice_note_gets_a_playable_m4a(processing_client, pool, message_id):
    sent = av_sample("ogg", audio="libopus", seconds=SECONDS)
    body = await created(await post(processing_client, message_id, sent, name="v.ogg"))
    m4a = body["variants"]["m4a"]
    assert m4a["mime_type"] == "audio/mp4" and m4a["dimensions"] is None
    resp = await processing_client.get(m4a["url"])
    assert resp.status == 200 and resp.headers["Content-Type"] == "audio/mp4"
    data = await resp.read()
    assert len(data) == m4a["file_size"]
    assert resp.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert resp.headers["Content-Disposition"].startswith('inline; filename="v.m4a"')
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        decoded = sum(f.samples for f in c.decode(audio=0)) / c.streams.audio[0].rate
    assert abs(decoded - body["duration_exact"]) <= 0.1
    # Players seek in it like in any media.
    part = await processing_client.get(m4a["url"], headers={"Range": "bytes=-100"})
    assert part.status == 206 and await part.read() == data[-100:]


@pytest.mark.parametrize("fmt,codecs", [("mp3", dict(audio="libmp3lame")),
                                        ("ipod", dict(audio="aac"))], ids=["mp3", "aac"])
async def test_audio_every_player_plays_gets_no_m4a(processing_client, message_id, fmt,
                                                    codecs):
    body = await created(await post(processing_client, message_id,
                                    av_sample(fmt, **codecs), name="a"))
    assert body["variants"] == {}


@pytest.mark.parametrize("cut", [0.5, 0.8])
@pytest.mark.parametrize("faststart", [False, True], ids=["index-at-end", "index-first"])
async def test_truncated_mp4_is_refused(processing_client, pool, message_id, cut, faststart):
    whole = av_sample("mp4", video="libx264", audio="aac", seconds=4, faststart=faststart)
    resp = await post(processing_client, message_id, whole[:int(len(whole) * cut)],
                      name="cut.mp4")
    await assert_refused(resp, pool, 422, "invalid_media")


async def test_truncated_webm_is_refused(processing_client, pool, message_id):
    whole = av_sample("webm", video="libvpx", audio="libopus", seconds=4)
    resp = await post(processing_client, message_id, whole[:len(whole) // 2], name="c.webm")
    await assert_refused(resp, pool, 422, "invalid_media", "truncated")


async def test_video_frames_over_the_pixel_cap_are_refused(processing_client_with, pool,
                                                           message_id):
    client = await processing_client_with(processing__max_image_pixels=1000)
    resp = await post(client, message_id, av_sample("mp4", video="libx264"), name="v.mp4")
    await assert_refused(resp, pool, 422, "media_too_complex", "64x48")


def _phone_video(fmt: str) -> bytes:
    """A portrait phone clip with its location in every place phones put it."""
    clip = av_sample("mp4", video="libx264", audio="aac", rotation=90, seconds=2)
    return with_tags(clip, fmt, keys=fmt == "mp4", xmp=True)


def _assert_no_metadata(stored: bytes, sent: bytes) -> None:
    for secret in (LOCATION.encode(), b"secret", XMP_UUID, b"mdta", b"\xa9xyz"):
        assert secret not in stored
    with av.open(io.BytesIO(stored)) as c:
        tags = dict(c.metadata)
        for s in c.streams:
            tags.update(s.metadata)
        assert not {"location", "location-eng", "comment", "title", "encoder",
                    "creation_time"} & set(tags)
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height, frame.rotation) == (64, 48, 90)
    with av.open(io.BytesIO(sent)) as a, av.open(io.BytesIO(stored)) as b:
        assert b.duration == a.duration
        assert b.streams.video[0].frames == a.streams.video[0].frames == 20
    assert packet_digests(stored) == packet_digests(sent)


@pytest.mark.parametrize("fmt,name", [("mp4", "clip.mp4"), ("mov", "IMG_0001.MOV")])
async def test_phone_video_is_stored_without_its_location(processing_client, message_id,
                                                          fmt, name):
    sent = _phone_video(fmt)
    assert LOCATION.encode() in sent
    body = await created(await post(processing_client, message_id, sent, name=name))
    stored = await fetch(processing_client, body["url"])
    _assert_no_metadata(stored, sent)
    assert body["file_size"] == len(stored)
    assert body["sha256"] == hashlib.sha256(stored).hexdigest()
    assert body["dimensions"] == {"width": 48, "height": 64}
    # Index first: players start, and seek with ranges, before the whole file is in.
    assert stored.index(b"moov") < stored.index(b"mdat")
    part = await processing_client.get(body["url"], headers={"Range": "bytes=100-199"})
    assert part.status == 206 and await part.read() == stored[100:200]


async def test_phone_video_by_tus_is_stored_without_its_location(processing_client,
                                                                 message_id):
    sent = _phone_video("mov")
    r, _ = await tus_upload(processing_client, message_id, sent, filename="IMG_0002.MOV")
    assert r.status == 204, await r.text()
    body = await (await processing_client.get(f"/api/media/{r.headers['Media-Id']}")).json()
    _assert_no_metadata(await fetch(processing_client, body["url"]), sent)


async def test_voice_note_loses_its_tags(processing_client, message_id):
    sent = with_tags(av_sample("ipod", audio="aac", seconds=SECONDS), "ipod", keys=True)
    body = await created(await post(processing_client, message_id, sent, name="memo.m4a"))
    stored = await fetch(processing_client, body["url"])
    assert LOCATION.encode() not in stored and b"secret" not in stored
    assert packet_digests(stored) == packet_digests(sent)
    assert abs(body["duration_exact"] - SECONDS) <= 0.1


@pytest.mark.parametrize("tus", [False, True], ids=["upload", "tus"])
async def test_keep_video_metadata_stores_the_bytes_as_sent(processing_client_with,
                                                            message_id, tus):
    client = await processing_client_with(processing__keep_video_metadata=True)
    sent = _phone_video("mov")
    if tus:
        r, _ = await tus_upload(client, message_id, sent, filename="IMG_0003.MOV")
        assert r.status == 204, await r.text()
        body = await (await client.get(f"/api/media/{r.headers['Media-Id']}")).json()
    else:
        body = await created(await post(client, message_id, sent, name="IMG_0003.MOV"))
    assert await fetch(client, body["url"]) == sent
    assert body["dimensions"] == {"width": 48, "height": 64}


async def test_track_in_an_unknown_codec_is_left_out(processing_client, message_id):
    sent = with_unknown_audio(av_sample("mp4", video="libx264", audio="aac", seconds=2))
    with av.open(io.BytesIO(sent)) as c:
        assert [s.codec_context is None for s in c.streams] == [False, True]
    body = await created(await post(processing_client, message_id, sent, name="v.mp4"))
    assert body["dimensions"] == {"width": 64, "height": 48}
    assert abs(body["duration_exact"] - 2) <= 0.1
    stored = await fetch(processing_client, body["url"])
    with av.open(io.BytesIO(stored)) as c:
        assert [s.type for s in c.streams] == ["video"]
    assert packet_digests(stored) == [p for p in packet_digests(sent) if p[0] == "video"]
