"""Audio and video through a real server: true durations, displayed dimensions, cover
art, waveforms, previews, the m4a variant, and truncated files refused."""
import hashlib
import io

import av
import pytest
from PIL import Image, ImageStat

from tests.media import av_sample, with_cover_art
from tests.test_processing_images import assert_refused, created, fetch, post

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
    assert await fetch(processing_client, body["url"]) == sent     # stored as sent
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
    client = await processing_client_with(max_image_pixels=1000)
    resp = await post(client, message_id, av_sample("mp4", video="libx264"), name="v.mp4")
    await assert_refused(resp, pool, 422, "media_too_complex", "64x48")
