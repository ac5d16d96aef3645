"""Real media files made by the tests (Pillow), padded to exact sizes where needed."""
from __future__ import annotations

import io
import os

from PIL import Image

JPEG_MAGIC = b"\xff\xd8\xff"

# Settings under which an image, video or audio file is stored byte for byte as sent
# (validated, not rewritten): what tests of storage and serving use, with padded JPEGs.
BYTES_KEPT = {"processing__image_compress": False, "processing__keep_image_metadata": True,
              "processing__keep_video_metadata": True}
BYTES_KEPT_ENV = {"MEDIA_IMAGE_COMPRESS": "false", "MEDIA_KEEP_IMAGE_METADATA": "true",
                  "MEDIA_KEEP_VIDEO_METADATA": "true"}


def jpeg_bytes(size: int | None = None, *, seed: int = 1) -> bytes:
    """A real JPEG; with ``size``, padded with random bytes (decoders ignore trailing
    data) or, below a real JPEG's size, the JPEG signature followed by random bytes."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (seed % 256, 90, 160)).save(buf, "JPEG", quality=80)
    data = buf.getvalue()
    if size is None:
        return data
    if size < len(data):
        if size < len(JPEG_MAGIC):
            raise ValueError("no allowed type fits in fewer than 3 bytes")
        return JPEG_MAGIC + os.urandom(size - len(JPEG_MAGIC))
    return data + os.urandom(size - len(data))


def png_bytes(width: int = 32, height: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (width, height), (10, 200, 30, 255)).save(buf, "PNG")
    return buf.getvalue()


def noise_mp4(codec: str, *, width: int, height: int, fps: int, frames: int,
              bit_rate: int | None = None, options: dict[str, str] | None = None) -> bytes:
    """An MP4 of random-noise frames, made with PyAV (FFmpeg in the wheel). Its index
    (moov) comes last, as encoders write it by default; noise keeps the file large, so
    reading the index means seeking past the media data rather than through it."""
    import pytest
    av = pytest.importorskip("av")
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if bit_rate:
            stream.bit_rate = bit_rate
        if options:
            stream.options = options
        for i in range(frames):
            noise = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
            frame = av.VideoFrame.from_image(noise)
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buf.getvalue()


# -- photos with metadata -------------------------------------------------------------

GPS_IFD = 0x8825


def exif_photo(width: int = 120, height: int = 80, *, orientation: int = 6,
               gps: bool = True, quality: int = 95, noise: bool = True) -> bytes:
    """A JPEG as a phone writes it: stored sideways with an EXIF orientation, a camera
    make, a comment, and (``gps``) a location."""
    img = _photo(width, height, noise)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "PhoneMaker"
    if gps:
        exif[GPS_IFD] = {1: "S", 2: (23.0, 32.0, 51.0), 3: "W", 4: (46.0, 38.0, 10.0)}
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, exif=exif.tobytes(), comment=b"secret comment")
    return buf.getvalue()


def _photo(width: int, height: int, noise: bool) -> Image.Image:
    """Left half red, right half blue (so orientation can be checked), plus noise so
    the JPEG has photo-like weight."""
    img = Image.new("RGB", (width, height), (220, 30, 30))
    img.paste((30, 30, 220), (width // 2, 0, width, height))
    if noise:
        grain = Image.frombytes("L", (width, height), os.urandom(width * height))
        img = Image.blend(img, Image.merge("RGB", (grain, grain, grain)), 0.25)
    return img


def photo_bytes(width: int, height: int, *, fmt: str = "JPEG", quality: int = 95,
                **params) -> bytes:
    buf = io.BytesIO()
    img = _photo(width, height, True)
    if fmt in ("PNG", "WEBP", "GIF") and params.pop("alpha", False):
        img = img.convert("RGBA")
    if fmt == "JPEG" or fmt == "WEBP":
        params["quality"] = quality
    img.save(buf, fmt, **params)
    return buf.getvalue()


def heic_bytes(width: int = 96, height: int = 64) -> bytes:
    """An iPhone-style HEIC, encoded with pillow-heif (a test extra: the server's
    pi-heif only decodes), without registering it as Pillow's HEIF plugin."""
    import pillow_heif
    buf = io.BytesIO()
    pillow_heif.from_pillow(_photo(width, height, True)).save(buf, quality=90)
    return buf.getvalue()


def animated_gif(frames: int = 3, size: int = 32) -> bytes:
    # Consecutive frames must differ, or Pillow merges them into one.
    imgs = [Image.new("RGB", (size, size), (i % 256, (i // 256) * 16 % 256, 90))
            for i in range(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, "GIF", save_all=True, append_images=imgs[1:], duration=100, loop=0,
                 comment=b"made by a test")
    return buf.getvalue()


def png_bomb(side: int = 50_000) -> bytes:
    """A PNG of a few hundred bytes whose header claims side x side pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


# -- audio and video ------------------------------------------------------------------

def _tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> bytes:
    import array
    import math
    n = int(seconds * rate)
    out = array.array("h")
    for i in range(n):
        # loudness rises over time, so a waveform has a shape to check
        v = int(12000 * (0.2 + 0.8 * i / max(1, n)) * math.sin(2 * math.pi * freq * i / rate))
        out.extend([v] * channels)
    return out.tobytes()


def av_sample(fmt: str, *, seconds: float = 2.0, video: str | None = None,
              audio: str | None = None, width: int = 64, height: int = 48, fps: int = 10,
              rotation: int | None = None, sample_rate: int = 48000,
              faststart: bool = False) -> bytes:
    """A real media file encoded by PyAV: ``video`` and/or ``audio`` codec names in
    container ``fmt`` ('mp4', 'webm', 'ogg', 'mp3', 'ipod'), ``seconds`` long."""
    import pytest
    av = pytest.importorskip("av")
    import tempfile
    # faststart rewrites the file to move the index first: it needs a real file.
    tmp = tempfile.NamedTemporaryFile(suffix="." + fmt) if faststart else None
    buf = tmp.name if tmp is not None else io.BytesIO()
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(buf, "w", format=fmt, options=options) as c:
        vs = as_ = None
        if video:
            vs = c.add_stream(video, rate=fps)
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            if rotation is not None:
                vs.set_display_rotation(rotation)
        if audio:
            as_ = c.add_stream(audio, rate=sample_rate, layout="mono")
        if vs is not None:
            for i in range(int(seconds * fps)):
                img = Image.new("RGB", (width, height), (0, 0, 0) if i == 0 else
                                (40 + (i * 7) % 200, 120, 200))
                frame = av.VideoFrame.from_image(img)
                frame.pts = i
                c.mux(vs.encode(frame))
            c.mux(vs.encode())
        if as_ is not None:
            pcm = _tone(seconds, sample_rate)
            step = 1024
            total = len(pcm) // 2
            resampler = av.AudioResampler(format=as_.codec_context.format.name,
                                          layout="mono", rate=sample_rate)
            for start in range(0, total, step):
                n = min(step, total - start)
                frame = av.AudioFrame(format="s16", layout="mono", samples=n)
                frame.planes[0].update(pcm[start * 2:(start + n) * 2])
                frame.sample_rate = sample_rate
                frame.pts = start
                for r in resampler.resample(frame):
                    c.mux(as_.encode(r))
            c.mux(as_.encode())
    if tmp is not None:
        with tmp:
            return open(tmp.name, "rb").read()
    return buf.getvalue()


def with_cover_art(mp3: bytes) -> bytes:
    """The MP3 again, with an album cover (an attached-picture video stream) added."""
    import av
    out = io.BytesIO()
    with av.open(io.BytesIO(mp3)) as inp, av.open(out, "w", format="mp3") as o:
        a = o.add_stream_from_template(inp.streams.audio[0])
        v = o.add_stream("mjpeg", rate=1)
        v.width, v.height, v.pix_fmt = 32, 32, "yuvj420p"
        v.disposition = av.stream.Disposition.attached_pic
        for p in v.encode(av.VideoFrame.from_image(Image.new("RGB", (32, 32), (200, 0, 0)))):
            o.mux(p)
        for p in v.encode():
            o.mux(p)
        for p in inp.demux(inp.streams.audio[0]):
            if p.dts is not None:
                p.stream = a
                o.mux(p)
    return out.getvalue()


# -- container metadata ---------------------------------------------------------------

LOCATION = "+40.7128-074.0060/"   # ISO 6709, as phones write it
SECRET_TAGS = {"location": LOCATION, "comment": "secret comment", "title": "secret title",
               "creation_time": "2024-05-01T10:00:00Z"}
# The uuid of an XMP box in ISO BMFF (Adobe's XMP spec, part 3).
XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")


def with_tags(data: bytes, fmt: str, *, keys: bool = False, xmp: bool = False,
              video_tag: str | None = None) -> bytes:
    """``data`` (a file PyAV made) remuxed into ``fmt`` with SECRET_TAGS on the
    container and a title on each stream; ``keys``: MP4 tags as a Keys/mdta list (as
    iPhones write them) besides udta; ``xmp``: an XMP uuid box appended (MP4/MOV);
    ``video_tag``: the video's sample entry (``hvc1``, as iPhones write HEVC)."""
    import av
    out = io.BytesIO()
    options = {"movflags": "use_metadata_tags"} if keys else {}
    with av.open(io.BytesIO(data)) as inp, av.open(out, "w", format=fmt,
                                                   options=options) as o:
        o.metadata.update(SECRET_TAGS)
        streams = {s.index: o.add_stream_from_template(s) for s in inp.streams}
        for s in streams.values():
            s.metadata["title"] = "secret stream"
            if video_tag and s.type == "video":
                s.codec_context.codec_tag = video_tag
        for p in inp.demux():
            if p.size:
                p.stream = streams[p.stream.index]
                o.mux(p)
    tagged = out.getvalue()
    if xmp:
        import struct
        body = XMP_UUID + f'<x:xmpmeta><exif:GPSLatitude>{LOCATION}</exif:GPSLatitude>' \
            '</x:xmpmeta>'.encode()
        tagged += struct.pack(">I4s", 8 + len(body), b"uuid") + body
    return tagged


def with_unknown_audio(mp4: bytes) -> bytes:
    """The MP4 (video and AAC) with its audio track's sample entry renamed to a codec
    FFmpeg does not know, as an iPhone's spatial audio track is to it."""
    i = mp4.index(b"mp4a")
    mp4 = mp4[:i] + b"apac" + mp4[i + 4:]
    i = mp4.index(b"esds")
    return mp4[:i] + b"xxxx" + mp4[i + 4:]


def packet_digests(data: bytes) -> list[tuple[str, int | None, str]]:
    """Every audio and video packet of a file, in order: (stream type, pts, sha256 of
    the payload); equal lists mean the same coded data with the same timing."""
    import hashlib

    import av
    with av.open(io.BytesIO(data)) as c:
        streams = [s for s in c.streams if s.type in ("audio", "video")]
        return [(p.stream.type, p.pts, hashlib.sha256(bytes(p)).hexdigest())
                for p in c.demux(*streams) if p.size]
