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
