"""Photos: true dimensions, compression, privacy and a preview (Pillow; pi-heif for HEIC).

Runs in a worker process (workers.py). The decision, in order:
1. Open with the one Pillow plugin for the detected type and check the pixel count
   (all frames together) from the header, before anything is decoded: a few hundred
   bytes can claim 50000x50000 pixels.
2. Decode (which proves the file is a whole image; a JPEG header glued onto HTML fails
   here), applying the EXIF orientation, so dimensions are as displayed.
3. Re-encode (orientation applied, longest edge capped, metadata gone, colour profile
   kept) when compression is on, HEIC/TIFF/BMP always (not every client shows them);
   keep the result only when it is meaningfully smaller, or when it had to be made.
4. A kept original loses its metadata anyway, losslessly (metadata.py), unless
   MEDIA_KEEP_IMAGE_METADATA. Animations are kept as they are (stripped), never
   flattened.
"""
from __future__ import annotations

import dataclasses
import io
import logging

import pi_heif
from PIL import Image

from server.errors import InvalidMedia, MediaError, MediaTooComplex
from server.processing import metadata
from server.processing.policy import ImagePlan

log = logging.getLogger(__name__)

pi_heif.register_heif_opener()
# Our own check (pixel count from the header) runs first; Pillow's stays as a backstop
# for paths that decode more than the header announced.
Image.MAX_IMAGE_PIXELS = None

PREVIEW_EDGE = 320
PREVIEW_QUALITY = 75
# A re-encoded file replaces the original only below this share of its size.
MEANINGFULLY_SMALLER = 0.9
# Quality for conversions that must happen even with compression off (HEIC to JPEG).
CONVERT_QUALITY = 92

_PLUGIN = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF",
           "image/webp": "WEBP", "image/heic": "HEIF", "image/avif": "AVIF",
           "image/bmp": "BMP", "image/tiff": "TIFF"}
MUST_CONVERT = {"image/heic", "image/tiff", "image/bmp"}
_OUT = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"),
        "WEBP": ("image/webp", "webp")}


@dataclasses.dataclass(frozen=True)
class Rendition:
    data: bytes
    mime_type: str
    extension: str
    dimensions: dict


@dataclasses.dataclass(frozen=True)
class ImageResult:
    stored: Rendition | None       # None: store the original bytes unchanged
    dimensions: dict               # of what is stored, as displayed
    is_compressed: bool
    quality: int | None
    preview: Rendition


def process_image(path: str, mime: str, size: int, plan: ImagePlan) -> ImageResult:
    """Everything done to one image; raises InvalidMedia or MediaTooComplex."""
    try:
        return _process(path, mime, size, plan)
    except MediaError:
        raise
    except Image.DecompressionBombError:
        raise MediaTooComplex() from None
    except MemoryError:    # the worker's memory limit (workers.py)
        raise MediaTooComplex("the image needs more memory than allowed") from None
    except Exception as e:   # whatever a hostile file makes a decoder raise
        log.debug("image rejected: %r", e)
        raise InvalidMedia(f"not a valid {mime.split('/')[1].upper()} image") from None


def _process(path: str, mime: str, size: int, plan: ImagePlan) -> ImageResult:
    with open(path, "rb") as f:
        original = f.read()
    frames = 1
    if mime == "image/gif":
        frames = metadata.walk_gif(original)[0]
    with Image.open(io.BytesIO(original), formats=[_PLUGIN[mime]]) as im:
        w, h = im.size
        if mime in ("image/webp", "image/png"):   # animated WebP, APNG
            frames = getattr(im, "n_frames", 1)
        if w < 1 or h < 1 or w * h * frames > plan.max_pixels:
            raise MediaTooComplex(
                f"{w}x{h} pixels{f' in {frames} frames' if frames > 1 else ''} is more "
                f"than the {plan.max_pixels} allowed")
        orientation = _orientation(im)
        convert = mime in MUST_CONVERT and not plan.keep_bytes
        recompress = (plan.compress or convert) and frames == 1
        if recompress and im.format == "JPEG":
            im.draft("RGB", _draft_size(w, h, plan.max_edge))   # decode at 1/2, 1/4...
        im.load()
        # Small images are made first and turned upright after: a 12 MP photo is never
        # copied or rotated at full size.
        preview = _preview(im, orientation)
        stored = None
        quality = None
        if recompress:
            quality = plan.quality if plan.compress else CONVERT_QUALITY
            candidate = _encode(im, orientation, mime, quality, plan.max_edge,
                                im.info.get("icc_profile"))
            if convert or len(candidate.data) <= MEANINGFULLY_SMALLER * size:
                stored = candidate
        if stored is not None:
            lossy = stored.mime_type != "image/png"
            return ImageResult(stored, stored.dimensions, True, quality if lossy else None,
                               preview)
        dims = {"width": w, "height": h} if orientation < 5 else {"width": h, "height": w}
    if not plan.keep_metadata:
        stripped = _strip(original, mime, orientation)
        if stripped != original:
            return ImageResult(Rendition(stripped, mime, "", dims), dims, False, None, preview)
    return ImageResult(None, dims, False, None, preview)


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _draft_size(w: int, h: int, edge: int) -> tuple[int, int]:
    scale = min(1.0, edge / max(w, h))
    return max(1, int(w * scale)), max(1, int(h * scale))


# EXIF orientation -> the transpose that shows the image upright (as ImageOps does).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


def _upright(img: Image.Image, orientation: int) -> Image.Image:
    method = _UPRIGHT.get(orientation)
    return img if method is None else img.transpose(method)


def _encode(im: Image.Image, orientation: int, mime: str, quality: int, edge: int,
            icc: bytes | None) -> Rendition:
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    if mime == "image/webp":
        fmt = "WEBP"
    elif mime == "image/png" or (has_alpha and mime != "image/heic"):
        fmt = "PNG"    # screenshots and transparency: lossless
    else:
        fmt = "JPEG"
    img = im
    if max(img.size) > edge:
        scale = edge / max(img.size)
        target = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        if img.mode == "P":
            img = img.convert("RGBA" if has_alpha else "RGB")
        img = img.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    img = _upright(img, orientation)
    if fmt == "JPEG" and img.mode not in ("RGB", "L"):
        img = _flatten(img)
    elif fmt != "JPEG" and img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = img.convert("RGBA" if has_alpha else "RGB")
    # Pillow carries comments, EXIF and XMP over from .info; only the profile may go on.
    img.info = {}
    buf = io.BytesIO()
    params: dict = {"icc_profile": icc} if icc else {}
    if fmt == "JPEG":
        # Progressive JPEG: smaller, with optimised Huffman tables, and drawn early.
        img.save(buf, "JPEG", quality=quality, progressive=True, **params)
    elif fmt == "WEBP":
        img.save(buf, "WEBP", quality=quality, method=4, **params)
    else:
        img.save(buf, "PNG", optimize=img.width * img.height <= 4_000_000, **params)
    out_mime, ext = _OUT[fmt]
    return Rendition(buf.getvalue(), out_mime, ext, {"width": img.width, "height": img.height})


def _flatten(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "PA", "P"):
        rgba = img.convert("RGBA")
        back = Image.new("RGB", rgba.size, (255, 255, 255))
        back.paste(rgba, mask=rgba.getchannel("A"))
        return back
    return img.convert("RGB")


def _preview(im: Image.Image, orientation: int) -> Rendition:
    """Longest edge PREVIEW_EDGE: JPEG, or WebP where transparency must survive."""
    img = im
    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = img.convert("RGBA" if "transparency" in img.info or "A" in img.mode else "RGB")
    factor = max(1, max(img.size) // (2 * PREVIEW_EDGE))
    # reduce() makes a small new image directly (box averaging); the rest is LANCZOS.
    img = img.reduce(factor) if factor > 1 else img.copy()
    img.thumbnail((PREVIEW_EDGE, PREVIEW_EDGE), Image.Resampling.LANCZOS)
    return encode_preview(_upright(img, orientation))


def encode_preview(img: Image.Image) -> Rendition:
    """A preview image's bytes (shared with video frames), with no metadata at all."""
    buf = io.BytesIO()
    alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    # convert() copies even to the same mode: .info can be emptied without touching the
    # caller's image. Pillow writes .info's comment (a JPEG's COM, a GIF's comment
    # extension), EXIF and XMP into the file it saves.
    img = img.convert("RGBA" if alpha else "RGB")
    img.info = {}
    if alpha:
        img.save(buf, "WEBP", quality=PREVIEW_QUALITY)
        mime, ext = "image/webp", "webp"
    else:
        img.save(buf, "JPEG", quality=PREVIEW_QUALITY)
        mime, ext = "image/jpeg", "jpg"
    return Rendition(buf.getvalue(), mime, ext, {"width": img.width, "height": img.height})


def _strip(data: bytes, mime: str, orientation: int) -> bytes:
    if mime == "image/jpeg":
        return metadata.strip_jpeg(data, orientation)
    strip = metadata.STRIPPERS.get(mime)
    if strip is not None:
        return strip(data)
    if mime == "image/avif":
        # No lossless way to drop AVIF's EXIF/XMP; re-encode only when there is some.
        with Image.open(io.BytesIO(data), formats=["AVIF"]) as im:
            if "exif" not in im.info and "xmp" not in im.info:
                return data
            buf = io.BytesIO()
            im.save(buf, "AVIF", quality=90, icc_profile=im.info.get("icc_profile"))
            return buf.getvalue()
    return data
