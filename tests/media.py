"""Real media files made by the tests (Pillow), padded to exact sizes where needed."""
from __future__ import annotations

import io
import os

from PIL import Image

JPEG_MAGIC = b"\xff\xd8\xff"


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
