"""What decoding a file will cost in memory, estimated from its header before any of it
is decoded: what a job reserves from MEDIA_PROCESSING_MEMORY_BYTES (workers.py).

Run in a worker like the decoding itself (opening a header is parsing hostile bytes
too). The estimates err on the large side: what the decoder holds plus one full-size
copy (a palette image converted for its preview), the file read into memory, and the
interpreter's own share.
"""
from __future__ import annotations

import logging

from PIL import Image

# images: its plugin table, and the HEIF opener it registers with Pillow.
from server.processing.images import _PLUGIN

log = logging.getLogger(__name__)

BASE_BYTES = 32 * 1024 * 1024
# Audio is decoded a frame at a time; archives' directories are capped (documents.py).
AUDIO_BYTES = 64 * 1024 * 1024
DOCUMENT_BYTES = 96 * 1024 * 1024
# Decoded video frames a decoder may hold at once (references, threads' frames).
VIDEO_FRAMES_HELD = 24



def fixed_cost(media_type: str) -> int | None:
    """The estimate for kinds whose cost does not depend on the file; None for those
    whose header must be read (``estimate``)."""
    return {"audio": AUDIO_BYTES, "document": DOCUMENT_BYTES}.get(media_type)


def image_bytes(width: int, height: int, mode: str, file_size: int) -> int:
    """Decoding an image of this header: its pixels as Pillow keeps them (one byte for
    palette and grey, four for the rest), six bytes a pixel more for the copies made
    on the way (a resampling's intermediate, a converted copy), and the file twice.
    It errs high: for a 10000x10000 RGBA PNG it says 986 MiB, above what decoding
    one really takes (docs/performance.md)."""
    held = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    return width * height * (held + 6) + 2 * file_size + BASE_BYTES


def video_bytes(width: int, height: int) -> int:
    """Decoding a video of this frame size: frames held by the decoder (YUV 4:2:0, 1.5
    bytes a pixel) and the RGB preview frame."""
    return int(width * height * (1.5 * VIDEO_FRAMES_HELD + 4)) + 2 * BASE_BYTES


def estimate(path: str, media_type: str, mime: str, size: int, max_pixels: int) -> int:
    """Bytes to reserve for processing this file. A header that can't be read, or that
    announces more pixels than ``max_pixels``, costs BASE_BYTES: the processing
    refuses such a file itself, before decoding, with its own message."""
    try:
        if media_type == "image":
            return _image(path, mime, size, max_pixels)
        if media_type == "video":
            return _video(path, max_pixels)
    except Exception as e:     # whatever a hostile header makes a parser raise
        log.debug("no estimate: %r", e)
        return BASE_BYTES
    return fixed_cost(media_type) or BASE_BYTES


def _image(path: str, mime: str, size: int, max_pixels: int) -> int:
    with Image.open(path, formats=[_PLUGIN[mime]]) as im:   # the header only
        w, h = im.size
        if w * h > max_pixels:
            return BASE_BYTES
        return image_bytes(w, h, im.mode, size)


def _video(path: str, max_pixels: int) -> int:
    import av
    with av.open(path, metadata_errors="ignore") as c:
        sizes = [(s.codec_context.width or 0) * (s.codec_context.height or 0)
                 for s in c.streams.video]
    pixels = max(sizes, default=0)
    if pixels > max_pixels:
        return BASE_BYTES
    return video_bytes(pixels, 1)
