"""Thumbnails and placeholders: which configured size answers a request, and the
rendering itself (Pillow for images, PyAV for a video's frame), run in a worker
process (workers.py) like every decode.

- A request gets the smallest configured size of its method that covers it (both
  edges at least as large), else the smallest of any method that does, else the
  largest of its method (else of all): a few sizes are stored, never one per request.
- ``crop`` fills the box exactly (centre cut, aspect of the box); ``scale`` fits inside
  it (aspect of the source). Neither ever enlarges the source: a 50x40 image asked
  for at 96x96 crop gives its 40x40 centre.
- JPEG, or PNG where the source has transparency; an animated GIF, WebP or PNG asked
  for with ``animated`` gives an animated WebP, unless its frames together exceed
  MEDIA_THUMBNAIL_MAX_SOURCE_PIXELS or its file MEDIA_THUMBNAIL_MAX_ANIMATED_BYTES
  (then its first frame). A still beyond MEDIA_THUMBNAIL_MAX_SOURCE_PIXELS is refused.
- A video's thumbnail is the liveliest of the first frames from a tenth of its length
  on (the frame whose luminance varies most): not the black frame most clips open on.
- The placeholder is the BlurHash (4x3 components) of the same picture.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import time
from typing import NamedTuple

from PIL import Image, ImageSequence, ImageStat

from server.errors import InvalidMedia, MediaError, MediaTooComplex
from server.processing import blurhash
from server.processing.images import _PLUGIN, Rendition, _orientation, _upright

log = logging.getLogger(__name__)

JPEG_QUALITY = 80
WEBP_QUALITY = 70
PLACEHOLDER_EDGE = 32
# Sources that can move; a request for one of them with animated=true is its own
# thumbnail (an animated WebP when the source does move).
ANIMATABLE = frozenset({"image/gif", "image/webp", "image/png"})
VIDEO_AT = 0.1           # share of the duration the frame is looked for from
VIDEO_CANDIDATES = 12    # frames decoded from there, the liveliest kept


class ThumbSize(NamedTuple):
    width: int
    height: int
    method: str          # crop | scale


@dataclasses.dataclass(frozen=True)
class Limits:
    max_source_pixels: int
    max_animated_bytes: int


@dataclasses.dataclass(frozen=True)
class Made:
    """What upload processing keeps: thumbnails by variant name, and the placeholder."""
    thumbnails: dict[str, Rendition]
    placeholder: str | None


def has_thumbnails(media_type: str) -> bool:
    return media_type in ("image", "video")


def animates(mime: str, asked: bool) -> bool:
    """Whether a request for ``animated`` is a thumbnail of its own for this type."""
    return asked and mime in ANIMATABLE


def variant_name(size: ThumbSize, animated: bool) -> str:
    """The media_variants name a thumbnail is stored under (thumb_96x96_crop_anim)."""
    return f"thumb_{size.width}x{size.height}_{size.method}{'_anim' if animated else ''}"


def choose(sizes, width: int, height: int, method: str) -> ThumbSize:
    """The configured size that answers a request for width x height by ``method``."""
    sizes = [ThumbSize(*s) for s in sizes]
    same = [s for s in sizes if s.method == method] or sizes

    def area(s: ThumbSize) -> tuple[int, int, int]:
        return s.width * s.height, s.width, s.height

    for pool in (same, sizes):
        covering = [s for s in pool if s.width >= width and s.height >= height]
        if covering:
            return min(covering, key=area)
    return max(same, key=area)


# -- geometry (pure) --------------------------------------------------------------------

def crop_box(w: int, h: int, bw: int, bh: int) -> tuple[tuple[int, int, int, int],
                                                        tuple[int, int]]:
    """For crop: the centred part of a w x h source with the box's aspect, and the
    size it is resized to (the box, or the part itself if smaller: never enlarged)."""
    if w * bh > h * bw:              # wider than the box: cut the sides
        cw, ch = max(1, round(h * bw / bh)), h
    else:                            # taller: cut top and bottom
        cw, ch = w, max(1, round(w * bh / bw))
    left, top = (w - cw) // 2, (h - ch) // 2
    out = (bw, bh) if cw >= bw else (cw, ch)
    return (left, top, left + cw, top + ch), out


def scaled_size(w: int, h: int, bw: int, bh: int) -> tuple[int, int]:
    """For scale: the source fitted inside the box, aspect kept, never enlarged."""
    ratio = min(bw / w, bh / h, 1.0)
    return max(1, round(w * ratio)), max(1, round(h * ratio))


def fit(img: Image.Image, size: ThumbSize) -> Image.Image:
    if size.method == "crop":
        box, out = crop_box(img.width, img.height, size.width, size.height)
        return img.resize(out, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    out = scaled_size(img.width, img.height, size.width, size.height)
    if out == img.size:
        return img.copy()
    return img.resize(out, Image.Resampling.LANCZOS, reducing_gap=3.0)


# -- in the worker ----------------------------------------------------------------------

def render(path: str, mime: str, media_type: str, size: ThumbSize, animated: bool,
           limits: Limits, deadline: float) -> Rendition:
    """One thumbnail of the file at ``path`` (``animated``: asked for so, of a type
    that animates()); InvalidMedia if it cannot be decoded, MediaTooComplex beyond the
    limits."""
    return _guarded(lambda: _render(path, mime, media_type, [size], animated, limits,
                                    deadline, placeholder=False))


def at_upload(path: str, mime: str, media_type: str, sizes, animated: bool,
              limits: Limits, deadline: float) -> Made:
    """The eager ``sizes`` and the placeholder, from one decode; ``animated`` as the
    URLs of the media JSON ask for them (animates() of the type stored)."""
    return _guarded(lambda: _render(path, mime, media_type, [ThumbSize(*s) for s in sizes],
                                    animated, limits, deadline, placeholder=True))


def _guarded(fn):
    try:
        return fn()
    except MediaError:
        raise
    except Image.DecompressionBombError:
        raise MediaTooComplex() from None
    except MemoryError:
        raise MediaTooComplex("the thumbnail needs more memory than allowed") from None
    except Exception as e:    # whatever a damaged or hostile file makes a decoder raise
        log.debug("no thumbnail: %r", e)
        raise InvalidMedia("the file could not be decoded to make a thumbnail") from None


def _render(path, mime, media_type, sizes, animated, limits, deadline, *, placeholder):
    if media_type == "video":
        frame = _video_frame(path, limits, deadline)
        made = {variant_name(s, False): _encode_still(fit(frame, s)) for s in sizes}
        return Made(made, _placeholder(frame)) if placeholder else made[
            variant_name(sizes[0], False)]
    with open(path, "rb") as f:
        data = f.read()
    with Image.open(io.BytesIO(data), formats=[_PLUGIN[mime]]) as im:
        frames = getattr(im, "n_frames", 1) if mime in ANIMATABLE else 1
        w, h = im.size
        moving = (animated and frames > 1 and w * h * frames <= limits.max_source_pixels
                  and len(data) <= limits.max_animated_bytes)
        if moving:
            made = {variant_name(s, True): _encode_animated(im, s, deadline) for s in sizes}
            im.seek(0)
            first = _still(im, sizes, limits) if placeholder else None
        else:
            first = _still(im, sizes, limits)
            made = {variant_name(s, animated): _encode_still(fit(first, s)) for s in sizes}
    if placeholder:
        return Made(made, _placeholder(first))
    return made[variant_name(sizes[0], animated)]


def _still(im: Image.Image, sizes, limits: Limits) -> Image.Image:
    """The first frame, upright, in RGB or RGBA; a JPEG decoded at the smallest scale
    that still covers every size asked for."""
    if im.format == "JPEG":
        need = max((max(s.width, s.height) for s in sizes), default=PLACEHOLDER_EDGE)
        im.draft("RGB", (need, need))
    if im.size[0] * im.size[1] > limits.max_source_pixels:
        raise MediaTooComplex(f"{im.size[0]}x{im.size[1]} pixels is more than the "
                              f"{limits.max_source_pixels} a thumbnail is made from")
    orientation = _orientation(im)
    im.load()
    img = im.convert("RGBA" if _has_alpha(im) else "RGB")
    return _upright(img, orientation)


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info


def _encode_still(img: Image.Image) -> Rendition:
    buf = io.BytesIO()
    img.info = {}
    if img.mode == "RGBA" and img.getextrema()[3][0] < 255:   # transparency really used
        img.save(buf, "PNG", optimize=True)
        mime, ext = "image/png", "png"
    else:
        img.convert("RGB").save(buf, "JPEG", quality=JPEG_QUALITY, progressive=True)
        mime, ext = "image/jpeg", "jpg"
    return Rendition(buf.getvalue(), mime, ext, {"width": img.width, "height": img.height})


def _encode_animated(im: Image.Image, size: ThumbSize, deadline: float) -> Rendition:
    frames, durations = [], []
    for frame in ImageSequence.Iterator(im):
        _check_time(deadline)
        frames.append(fit(frame.convert("RGBA"), size))
        durations.append(max(20, int(frame.info.get("duration", 100) or 100)))
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=durations,
                   loop=0, quality=WEBP_QUALITY, method=4)
    return Rendition(buf.getvalue(), "image/webp", "webp",
                     {"width": frames[0].width, "height": frames[0].height})


def _placeholder(img: Image.Image) -> str:
    small = img.convert("RGB")
    small.thumbnail((PLACEHOLDER_EDGE, PLACEHOLDER_EDGE), Image.Resampling.BILINEAR)
    return blurhash.encode(small.width, small.height, small.tobytes())


def _check_time(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise MediaTooComplex("the thumbnail takes too long to make")


def _video_frame(path: str, limits: Limits, deadline: float) -> Image.Image:
    import av
    with av.open(path, metadata_errors="ignore") as c:
        videos = [s for s in c.streams.video if s.codec_context is not None]
        if not videos:
            raise InvalidMedia("no video stream to make a thumbnail from")
        video = videos[0]
        w, h = video.codec_context.width or 0, video.codec_context.height or 0
        if w * h > limits.max_source_pixels:
            raise MediaTooComplex(f"{w}x{h} video frames are larger than allowed")
        if c.duration and c.duration > 0:
            # A seek that fails (an index-less stream) leaves decoding at the start.
            with contextlib.suppress(Exception):
                c.seek(int(c.duration * VIDEO_AT), any_frame=False, backward=True)
        best, best_score, seen = None, -1.0, 0
        for frame in c.decode(video):
            _check_time(deadline)
            img = frame.to_image()
            rotation = getattr(frame, "rotation", 0) or 0
            score = ImageStat.Stat(img.convert("L")).stddev[0]
            if score > best_score:
                best, best_score = (img, rotation), score
            seen += 1
            if seen >= VIDEO_CANDIDATES:
                break
        if best is None:
            raise InvalidMedia("no video frame could be decoded")
        img, rotation = best
        return img.rotate(rotation, expand=True) if rotation else img

