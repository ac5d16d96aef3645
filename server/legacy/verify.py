"""verify: every stored file read back whole, and (with a folder) compared with its
legacy copy.

A stored file is intact when its chunks are exactly 0..chunk_count-1, each decodes to
chunk_size bytes (the last to the remainder), the total is file_size and the sha256
is the one recorded at upload. The check reads the chunks itself rather than through
the serving path, which trims the last chunk to the file's size and so would not see a
chunk that grew.
"""
from __future__ import annotations

import binascii
import dataclasses
import hashlib
from pathlib import Path
from typing import TextIO

import pybase64

from server.errors import MediaNotFound
from server.legacy.files import sha256_of
from server.legacy.paths import resolve
from server.legacy.progress import Progress
from server.legacy.stored import stored_media
from server.store.media import MediaRecord, MediaStore
from server.store.sqlfiles import Q

CHUNKS_PER_READ = 8


@dataclasses.dataclass(frozen=True)
class Problem:
    media_id: int | None
    legacy_name: str | None
    what: str

    def __str__(self) -> str:
        who = f"media {self.media_id}" if self.media_id is not None else "-"
        if self.legacy_name:
            who += f" ({self.legacy_name})"
        return f"MISMATCH {who}: {self.what}"


async def check_media(store: MediaStore, rec: MediaRecord) -> str | None:
    """None when the stored copy of ``rec`` is intact, else what is wrong with it."""
    chunks, max_seq = await store.content_extent(rec.content_id)
    if (chunks, max_seq) != (rec.chunk_count, rec.chunk_count - 1):
        return f"{chunks} chunk(s) up to seq {max_seq}, expected {rec.chunk_count}"

    h = hashlib.sha256()
    size = 0
    for first in range(0, rec.chunk_count, CHUNKS_PER_READ):
        last = min(first + CHUNKS_PER_READ, rec.chunk_count) - 1
        rows = await store.content_chunks(rec.content_id, first, last)
        if [seq for seq, _ in rows] != list(range(first, last + 1)):
            return f"chunks {first}-{last} changed while being read"
        for seq, text in rows:
            try:
                data = pybase64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                return f"chunk {seq} is not valid base64"
            expected = (rec.chunk_size if seq < rec.chunk_count - 1
                        else rec.file_size - rec.chunk_size * (rec.chunk_count - 1))
            if len(data) != expected:
                return f"chunk {seq} holds {len(data)} bytes, expected {expected}"
            h.update(data)
            size += len(data)
    if size != rec.file_size:
        return f"{size} bytes stored, file_size says {rec.file_size}"
    if h.digest() != rec.sha256:
        return "sha256 of the stored bytes differs from the one recorded"
    return None




async def _count(store: MediaStore) -> int:
    async with store.connection() as conn:
        return sum(r["files"] for r in await Q.media_totals.fetch(conn))


async def verify(store: MediaStore, *, media_id: int | None = None,
                 source: Path | None = None, out: TextIO | None = None,
                 bar: bool | None = None) -> tuple[int, list[Problem]]:
    """Check every complete file (or one); returns (files checked, problems)."""
    if media_id is not None:
        total = 1

        async def ids():
            async with store.connection() as conn:
                row = await Q.legacy_name_of.fetchrow(conn, media_id=media_id)
            yield media_id, row["legacy_name"] if row else None
        todo = ids()
    else:
        total = await _count(store)
        todo = stored_media(store)
    progress = Progress(total, "verify", out=out, bar=bar)
    problems: list[Problem] = []
    checked = 0
    if media_id is None:
        for p in await store.broken_invariants():
            problems.append(Problem(None, None, p))
            progress.line(str(problems[-1]))
    try:
        async for mid, legacy in todo:
            found = await _verify_one(store, mid, legacy, source)
            checked += 1
            for p in found:
                problems.append(p)
                progress.line(str(p))
            progress.step()
    finally:
        progress.close()
    return checked, problems


async def _verify_one(store: MediaStore, media_id: int, legacy: str | None,
                      source: Path | None) -> list[Problem]:
    try:
        rec = await store.stat(media_id)
    except MediaNotFound:
        return [Problem(media_id, legacy, "no complete media with this id")]
    problems = []
    if (what := await check_media(store, rec)) is not None:
        problems.append(Problem(media_id, legacy, what))
    if legacy is not None:
        async with store.connection() as conn:
            known = await Q.legacy_get.fetchrow(conn, legacy_name=legacy)
        for what in await _against_import(rec, known, source, legacy):
            problems.append(Problem(media_id, legacy, what))
    return problems


async def _against_import(rec: MediaRecord, known, source: Path | None,
                          legacy: str) -> list[str]:
    """An imported media against what its import recorded and, with ``source``, against
    its legacy file. The file is held to the legacy sha256 (its own, recorded at
    import), the stored copy to the stored one: for a file imported with --process the
    two differ on purpose, and only the stored copy's sha256 says it is still intact."""
    if known is None:
        return ["imported, but its map row is gone"]
    found = []
    if rec.sha256 != known["stored_sha256"]:
        found.append("the database copy is not the one imported (its sha256 differs "
                     "from the one recorded at import)")
    if source is None:
        return found
    path = resolve(source, legacy)
    if path is None:
        return found   # cleaned up already: the database copy is the only one now
    sha, _ = await sha256_of(path)
    if sha != known["sha256"]:
        found.append("the legacy file differs from the one imported")
    elif not known["processed"] and sha != rec.sha256:
        found.append("the database copy differs from the legacy file")
    return found
