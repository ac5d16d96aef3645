"""Purging old media, a small batch at a time (MEDIA_RETENTION, ``media-store purge``).

The contract:

- A batch is one short transaction: up to BATCH media of the selection, oldest first,
  locked with SKIP LOCKED (instances purging at once take different batches; none
  waits on another), deleted with their chunks, variants and previews, each remembered
  by a tombstone in ``purged_media`` so its id answers 410 ``media_purged`` from then
  on, and one audit row naming every id of the batch. All of it commits together or
  not at all.
- A batch stops adding media once it holds BATCH_BYTES (its first media always goes):
  the rows a batch deletes, and so its locks and WAL, stay bounded even for videos.
- Media still uploading are never taken; messages are never touched.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

from server.retention.rules import Selection
from server.store.media import MediaStore
from server.store.sqlfiles import Q

BATCH = 100                     # media per batch at most
BATCH_BYTES = 256 * 1024**2     # ... and bytes, past its first media


@dataclasses.dataclass
class Purged:
    """What went: files and bytes (variants included), by media type."""
    files: int = 0
    bytes: int = 0
    by_type: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)

    def add(self, media_type: str, files: int, nbytes: int) -> None:
        self.files += files
        self.bytes += nbytes
        f, b = self.by_type.get(media_type, (0, 0))
        self.by_type[media_type] = (f + files, b + nbytes)


def _params(sel: Selection) -> dict:
    return {"media_type": sel.media_type, "except_types": list(sel.except_types),
            "older_than_seconds": sel.older_than.total_seconds()}


async def candidates(store: MediaStore, sel: Selection) -> Purged:
    """What purging ``sel`` would take now; reads only."""
    found = Purged()
    async with store.connection() as conn:
        for r in await Q.purge_candidates.fetch(conn, **_params(sel)):
            found.add(r["media_type"], r["files"], r["bytes"])
    return found


async def purge_batch(store: MediaStore, sel: Selection, actor: str, *,
                      batch: int = BATCH, max_bytes: int = BATCH_BYTES) -> Purged:
    """Purge one batch of ``sel`` and audit it as ``actor``; what went (nothing once
    the selection is empty, or all of it is locked by others)."""
    went = Purged()
    async with store.connection() as conn, conn.transaction():
        rows = await Q.purge_batch.fetch(conn, **_params(sel), batch=batch,
                                         max_bytes=max_bytes)
        for r in rows:
            went.add(r["media_type"], 1, r["bytes"])
        if rows:
            await Q.insert_purge_audit.execute(
                conn, actor=actor[:120], media_ids=[r["id"] for r in rows],
                outcome=f"ok: {sel.label}, {went.files} media, {went.bytes} bytes"[:200])
    for r in rows:
        store.forget(r["id"])   # other instances hear it from the delete trigger
    return went


async def purge(store: MediaStore, sel: Selection, actor: str, *,
                max_batches: int | None = None, batch: int = BATCH,
                on_batch: Callable[[Purged], None] | None = None) -> Purged:
    """Purge ``sel`` batch by batch until a batch comes back empty (or ``max_batches``
    ran: a backlog then drains over several runs); the total. ``on_batch`` sees each
    batch as it commits (a progress bar)."""
    total = Purged()
    done = 0
    while max_batches is None or done < max_batches:
        went = await purge_batch(store, sel, actor, batch=batch)
        done += 1
        if not went.files:
            break
        for media_type, (files, nbytes) in went.by_type.items():
            total.add(media_type, files, nbytes)
        if on_batch is not None:
            on_batch(went)
    return total
