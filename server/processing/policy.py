"""What processing does to uploads, from the settings and per upload.

Pure values and functions: the policy built once from the settings, and the options a
client may give per upload (``compress=false`` for a photo sent "as a document",
``quality=N``), as query parameters or form fields.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from server.errors import BadRequest
from server.processing.remux import strippable
from server.settings import Settings

MEDIA_TYPES = ("image", "video", "audio", "document")


@dataclasses.dataclass(frozen=True)
class Policy:
    enabled: bool
    allowed: frozenset[str]
    max_bytes: Mapping[str, int]        # per media_type, already capped by the overall limit
    compress: bool
    quality: int
    max_edge: int
    keep_metadata: bool
    max_pixels: int
    concurrency: int
    keep_av_metadata: bool = False      # video and audio (MEDIA_KEEP_VIDEO_METADATA)
    # Per file: seconds of processing before it is stopped (plus a second per 10 MiB),
    # and bytes that the files processed at once may take together (workers.py).
    timeout_seconds: float = 20.0
    memory_bytes: int = 1024**3
    # Facts and previews only: the stored bytes are exactly those received (a legacy
    # import without --process, whose sha256 must stay the file's).
    keep_bytes: bool = False
    # Thumbnails (thumbnails.py): the configured sizes, those made at upload, limits.
    thumbnail_sizes: tuple[tuple[int, int, str], ...] = ((96, 96, "crop"),)
    thumbnail_eager: tuple[tuple[int, int, str], ...] = ()
    thumbnail_max_source_pixels: int = 100_000_000
    thumbnail_max_animated_bytes: int = 16 * 1024**2

    @classmethod
    def from_settings(cls, s: Settings) -> "Policy":
        p = s.processing
        per_type = {"image": p.max_image_bytes, "video": p.max_video_bytes,
                    "audio": p.max_audio_bytes, "document": p.max_document_bytes}
        return cls(enabled=p.enabled, allowed=p.allowed_types,
                   max_bytes={t: min(v, s.uploads.max_bytes) for t, v in per_type.items()},
                   compress=p.image_compress, quality=p.image_quality,
                   max_edge=p.image_max_edge, keep_metadata=p.keep_image_metadata,
                   max_pixels=p.max_image_pixels, concurrency=p.concurrency,
                   keep_av_metadata=p.keep_video_metadata,
                   timeout_seconds=p.timeout_seconds,
                   memory_bytes=p.memory_bytes,
                   thumbnail_sizes=p.thumbnail_sizes, thumbnail_eager=p.thumbnail_eager,
                   thumbnail_max_source_pixels=p.thumbnail_max_source_pixels,
                   thumbnail_max_animated_bytes=p.thumbnail_max_animated_bytes)


@dataclasses.dataclass(frozen=True)
class Options:
    """One upload's wishes; None leaves the server's setting in force."""
    compress: bool | None = None
    quality: int | None = None

    def with_field(self, name: str | None, value: str) -> "Options":
        """These options updated by a query parameter or form field (others ignored)."""
        if name == "compress":
            return dataclasses.replace(self, compress=parse_flag(name, value))
        if name == "quality":
            return dataclasses.replace(self, quality=parse_quality(value))
        return self


def options_from(params: Mapping[str, str]) -> Options:
    opts = Options()
    for name in ("compress", "quality"):
        if name in params:
            opts = opts.with_field(name, params[name])
    return opts


def parse_flag(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise BadRequest(f"{name} must be true or false")


def parse_quality(value: str) -> int:
    v = value.strip()
    if not (v.isascii() and v.isdigit() and len(v) <= 3 and 1 <= int(v) <= 100):
        raise BadRequest("quality must be an integer from 1 to 100")
    return int(v)


@dataclasses.dataclass(frozen=True)
class ImagePlan:
    """What to do with one image: compress it, at which quality, and how large."""
    compress: bool
    quality: int
    max_edge: int
    keep_metadata: bool
    max_pixels: int
    keep_bytes: bool = False    # no conversion either (HEIC stays HEIC)


def keeping_bytes(policy: Policy) -> Policy:
    """``policy`` with nothing that changes the bytes: type checks, limits, facts and
    previews as before; no compression, no stripping, no conversion."""
    return dataclasses.replace(policy, compress=False, keep_metadata=True,
                               keep_av_metadata=True, keep_bytes=True)


def strips_av(policy: Policy, mime: str) -> bool:
    """Whether a video or audio file of type ``mime`` is stored remuxed without its
    container metadata rather than as sent."""
    return not policy.keep_av_metadata and strippable(mime)


def image_plan(policy: Policy, options: Options) -> ImagePlan:
    if policy.keep_bytes:
        # A client's compress/quality cannot override it: nothing may be rewritten.
        return ImagePlan(compress=False, quality=policy.quality, max_edge=policy.max_edge,
                         keep_metadata=True, max_pixels=policy.max_pixels, keep_bytes=True)
    return ImagePlan(
        # quality=N alone asks for compression even where the server default is off.
        compress=(options.compress if options.compress is not None
                  else options.quality is not None or policy.compress),
        quality=policy.quality if options.quality is None else options.quality,
        max_edge=policy.max_edge, keep_metadata=policy.keep_metadata,
        max_pixels=policy.max_pixels)
