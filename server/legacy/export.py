"""export: stored media written back out as files, the way back to a folder.

Each file is written under its legacy name when it came from the legacy folder (so the
folder can be put back as it was), else under its stored file_name; streamed from the
chunks, checked against its sha256 as it is written, and renamed into place only when
whole. A file already there with the same bytes is left alone; a different one is
never overwritten. A file imported with --process comes back as stored (compressed,
stripped), not as the original: the manifest's last columns say which (processed,
and the legacy file's own sha256), and only cleanup's --archive kept the original.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from datetime import datetime
from pathlib import Path
from typing import TextIO

import aiofiles

from server.legacy.files import sha256_of
from server.legacy.manifest import EXPORT_HEADER, write_manifest
from server.legacy.paths import legacy_name, url_path
from server.legacy.progress import Progress
from server.legacy.stored import stored_media
from server.store.media import MediaRecord, MediaStore, StorageCorrupt
from server.store.sqlfiles import Q

MANIFEST = "manifest.csv"
WRITTEN, SAME, FAILED = "exported", "already_there", "failed"


@dataclasses.dataclass
class Exported:
    name: str
    media_id: int
    message_id: int
    size: int
    sha256: bytes
    outcome: str
    reason: str = ""
    legacy_sha256: bytes | None = None   # the legacy file's, when it was imported
    processed: bool | None = None        # imported with --process: not the original bytes


async def export(store: MediaStore, to: Path, *, message_id: int | None = None,
                 since: datetime | None = None, manifest: Path | None = None,
                 out: TextIO | None = None, bar: bool | None = None) -> list[Exported]:
    """Write the complete media (all, one message's, or those since a date) to ``to``
    with a manifest (default ``to/manifest.csv``; elsewhere when restoring the legacy
    folder itself); returns one entry per file."""
    to.mkdir(parents=True, exist_ok=True)
    todo = [r async for r in stored_media(store, message_id, since)]
    progress = Progress(len(todo), "export", out=out, bar=bar)
    results: list[Exported] = []
    try:
        for media_id, legacy in todo:
            rec = await store.stat(media_id)
            name = legacy if legacy is not None else rec.file_name
            res = await _export_one(store, rec, to, name)
            if legacy is not None:
                async with store.connection() as conn:
                    known = await Q.legacy_get.fetchrow(conn, legacy_name=legacy)
                if known is not None:
                    res.legacy_sha256, res.processed = known["sha256"], known["processed"]
            results.append(res)
            if res.outcome == FAILED:
                progress.line(f"failed: {name} (media {media_id}): {res.reason}")
            progress.step()
    finally:
        progress.close()
    write_manifest(manifest or to / MANIFEST, (
        (r.name, r.size, r.sha256.hex(), r.media_id, r.message_id, r.outcome,
         r.legacy_sha256.hex() if r.legacy_sha256 else None,
         None if r.processed is None else str(r.processed).lower())
        for r in results), header=EXPORT_HEADER)
    return results




async def _export_one(store: MediaStore, rec: MediaRecord, to: Path,
                      name: str) -> Exported:
    res = Exported(name, rec.id, rec.message_id, rec.file_size, rec.sha256, WRITTEN)
    # Names come from the database: hold them to the same rule as a URL would be.
    if legacy_name(url_path(name)) != name or name == MANIFEST:
        res.outcome, res.reason = FAILED, "its name is not a safe relative path"
        return res
    target = to.joinpath(*name.split("/"))
    if target.exists():
        sha, _ = await sha256_of(target)
        if sha == rec.sha256:
            res.outcome = SAME
        else:
            res.outcome, res.reason = FAILED, "a different file is already there"
        return res
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.part")
    h = hashlib.sha256()
    try:
        async with aiofiles.open(part, "wb") as f:
            if rec.file_size:
                async for piece in store.read(rec, 0, rec.file_size - 1):
                    h.update(piece)
                    await f.write(piece)
        if h.digest() != rec.sha256:
            raise StorageCorrupt("sha256 of the stored bytes differs from the recorded one")
        os.replace(part, target)
        ts = rec.created_at.timestamp()
        os.utime(target, (ts, ts))
    except (StorageCorrupt, OSError) as e:
        part.unlink(missing_ok=True)
        res.outcome, res.reason = FAILED, str(e)
    return res
