"""cleanup-legacy: delete legacy files whose database copy verifies, and only those.

A file is deleted only when, at that moment: it was imported (legacy_media), its bytes
still hash to the legacy sha256 recorded at import, and its database copy reads back
whole with the sha256 recorded for it at import (the same as the file's, unless it was
imported with --process: then the file it deletes is the only copy of the original
bytes, which is what --archive is for).
Anything else is kept and said why. Without ``yes`` nothing is touched; ``archive``
first writes every file about to go into a .tar.gz, and nothing is deleted if that fails.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import tarfile
from pathlib import Path
from typing import TextIO

from server.errors import MediaNotFound
from server.legacy.files import FileStat, list_folder, sha256_of
from server.legacy.lock import legacy_lock
from server.legacy.paths import resolve
from server.legacy.progress import Progress
from server.legacy.verify import check_media
from server.store.media import MediaStore
from server.store.sqlfiles import Q

DELETED, WOULD_DELETE, KEPT = "deleted", "would_delete", "kept"


@dataclasses.dataclass
class Decision:
    name: str
    outcome: str
    reason: str = ""
    media_id: int | None = None
    path: Path | None = None       # the real file (symlinks inside the folder followed)
    entry: Path | None = None      # the folder's own entry for the name: what is deleted
    stat: FileStat | None = None
    sha256: bytes | None = None


async def cleanup(store: MediaStore, source: Path, *, yes: bool = False,
                  archive: Path | None = None, out: TextIO | None = None,
                  bar: bool | None = None) -> list[Decision]:
    """Decide for every file of ``source``; with ``yes``, archive then delete."""
    listing = await list_folder(source)
    decisions = [Decision(shown, KEPT, why) for shown, why in listing.refused]
    async with legacy_lock(store):
        progress = Progress(len(listing.names), "check", out=out, bar=bar)
        try:
            for name in listing.names:
                d = await _decide(store, source, name)
                decisions.append(d)
                if d.outcome == KEPT:
                    progress.line(f"kept: {name}: {d.reason}")
                progress.step()
        finally:
            progress.close()
        doomed = [d for d in decisions if d.outcome == WOULD_DELETE]
        if not yes:
            for d in doomed:
                progress.line(f"would delete: {d.name} (media {d.media_id})")
            return decisions
        if archive is not None and doomed:
            await asyncio.to_thread(_write_archive, archive, doomed)
            progress.line(f"archived {len(doomed)} file(s) in {archive}")
        for d in doomed:
            await _delete(store, d)
            progress.line(f"{d.outcome}: {d.name}" + (f": {d.reason}" if d.reason else ""))
    return decisions


async def _decide(store: MediaStore, source: Path, name: str) -> Decision:
    d = Decision(name, KEPT)
    async with store.connection() as conn:
        known = await Q.legacy_get.fetchrow(conn, legacy_name=name)
    if known is None:
        d.reason = "not imported"
        return d
    d.media_id = known["media_id"]
    path = resolve(source, name)
    if path is None:
        d.reason = "vanished or left the folder"
        return d
    d.path, d.stat = path, FileStat.of(path)
    d.entry = source.joinpath(*name.split("/"))
    d.sha256, _ = await sha256_of(path)
    if d.sha256 != known["sha256"]:
        d.reason = "the file differs from the one imported"
        return d
    try:
        rec = await store.stat(d.media_id)
    except MediaNotFound:
        d.reason = "its media is gone"
        return d
    # The stored copy is held to the sha256 recorded for it at import: the file's own
    # unless it was imported with --process (then other bytes, on purpose).
    if rec.sha256 != known["stored_sha256"]:
        d.reason = "the database copy is not the one imported"
        return d
    if not known["processed"] and rec.sha256 != d.sha256:
        d.reason = "the database copy differs from the file"
        return d
    if (problem := await check_media(store, rec)) is not None:
        d.reason = f"the database copy does not verify: {problem}"
        return d
    d.outcome = WOULD_DELETE
    return d


def _write_archive(archive: Path, doomed: list[Decision]) -> None:
    tmp = archive.with_name(f".{archive.name}.part")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for d in doomed:
                tar.add(str(d.path), arcname=d.name, recursive=False)
        os.replace(tmp, archive)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


async def _delete(store: MediaStore, d: Decision) -> None:
    # Checked again just before: the file untouched since it was hashed, its media
    # still there with the same record.
    async with store.connection() as conn:
        known = await Q.legacy_get.fetchrow(conn, legacy_name=d.name)
    if known is None or known["sha256"] != d.sha256:
        d.outcome, d.reason = KEPT, "its media went away meanwhile"
        return
    try:
        if FileStat.of(d.path) != d.stat:
            d.outcome, d.reason = KEPT, "the file changed meanwhile"
            return
        # The entry, not its target: a symlink inside the folder goes, what it points
        # at is decided under its own name.
        os.unlink(d.entry)
    except OSError as e:
        d.outcome, d.reason = KEPT, f"could not delete: {e.strerror}"
        return
    d.outcome = DELETED
