"""Variants: files derived from a media (its preview, a playable m4a), stored exactly as
media are: a content of their own (shared when identical), a row in media_variants.
They are written while the media is still uploading and so appear with it; they are
read through MediaStore.read like the media itself (a variant's record names its
content)."""
from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

from server.errors import MediaNotFound
from server.store.media import MediaRecord, MediaStore
from server.store.sqlfiles import Q

NAMES = ("preview", "m4a")
READ_BYTES = 256 * 1024


@dataclasses.dataclass(frozen=True)
class VariantSource:
    name: str
    mime_type: str
    dimensions: dict | None
    pieces: AsyncIterator[bytes]    # the bytes, in pieces of any size


async def store_variant(store: MediaStore, media_id: int, v: VariantSource) -> None:
    """Write a variant's bytes, then its row (so a row always has all its chunks),
    through the store's one writer; identical variants share one stored content."""
    await store.store_variant(media_id, name=v.name, mime_type=v.mime_type,
                              dimensions=v.dimensions, pieces=v.pieces)


async def stat_variant(store: MediaStore, media_id: int, name: str) -> MediaRecord:
    """A servable record for one variant of a complete media; MediaNotFound otherwise
    (also for a name that is not a variant at all)."""
    if name not in NAMES:
        raise MediaNotFound(f"no variant named {name[:40]!r}")
    rec = await find_variant(store, media_id, name)
    if rec is None:
        await store.raise_if_purged(media_id)   # its variants went with it: 410
        raise MediaNotFound(f"this media has no {name} variant")
    return rec


async def find_variant(store: MediaStore, media_id: int, name: str) -> MediaRecord | None:
    """The servable record of variant ``name`` of a complete media, None if there is
    none (yet): also for thumbnails, which are variants made on request."""
    async with store.connection() as conn:
        row = await Q.get_variant.fetchrow(conn, id=media_id, name=name)
    if row is None:
        return None
    rec = MediaRecord.from_row(row)
    stem = rec.original_name.rsplit(".", 1)[0] or "media"
    ext = {"image/jpeg": "jpg", "image/webp": "webp", "image/png": "png",
           "audio/mp4": "m4a"}.get(rec.mime_type, "bin")
    return dataclasses.replace(rec, original_name=f"{stem}.{name}.{ext}"
                               if name != "m4a" else f"{stem}.{ext}")


async def from_bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def from_file(path: str) -> AsyncIterator[bytes]:
    import aiofiles
    async with aiofiles.open(path, "rb") as f:
        while piece := await f.read(READ_BYTES):
            yield piece
