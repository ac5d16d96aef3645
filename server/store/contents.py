"""Contents: the bytes of one sha256, stored once, shown by any number of rows.

A media row (or a variant) points at its content. While an upload streams in, its
bytes go to a 'writing' content that belongs to the upload's row (so an aborted or
abandoned upload takes them with it, as before). Finishing, once the sha256 is known,
happens in the transaction that makes the row visible (``settle``): if that sha256 is
stored already, the row points at the stored content and the new copy is dropped;
otherwise the new copy becomes the stored one. Two identical uploads finishing at once
are serialised by a transaction lock on the sha256, so the second finds the first.

Content no row shows any more is deleted by ``reclaim_orphans`` once it has been
unreferenced for the grace period (MEDIA_ORPHAN_GRACE_SECONDS): an upload about to
point at it either claims it first (the reclaim then leaves it) or finds it gone and
keeps its own copy (sql/contents.sql says how the two statements meet).
"""
from __future__ import annotations

import dataclasses

import asyncpg

from server.errors import UploadExpired
from server.store.sqlfiles import Q


@dataclasses.dataclass(frozen=True)
class Settled:
    """Where a finished upload's bytes are: the content its row must point at."""
    content_id: int
    chunk_size: int
    chunk_count: int
    deduplicated: bool   # an existing content: the upload's own copy is to be dropped


async def lock_sha256(conn: asyncpg.Connection, sha256: bytes) -> None:
    """Until the caller's transaction ends, no other finish of the same bytes runs."""
    await Q.lock_content_sha256.execute(conn, sha256=sha256)


async def settle(conn: asyncpg.Connection, own_id: int, sha256: bytes, file_size: int,
                 chunk_count: int) -> Settled:
    """In the caller's transaction: the stored content with ``sha256`` (claimed), or
    ``own_id`` sealed as that content. UploadExpired when the own copy is gone (the
    janitor reclaimed the upload). Variants settle here; an upload's finish does the
    same inside finalize_upload (sql/media.sql)."""
    await lock_sha256(conn, sha256)
    row = await Q.claim_stored_content.fetchrow(conn, sha256=sha256)
    if row is not None:
        return Settled(row["id"], row["chunk_size"], row["chunk_count"], True)
    row = await Q.seal_content.fetchrow(conn, id=own_id, sha256=sha256,
                                        file_size=file_size, chunk_count=chunk_count)
    if row is None:
        raise UploadExpired()
    # Chunks past the end were never part of the bytes (a checksummed tus PATCH cut
    # off); a stored content has exactly chunk_count chunks.
    await Q.trim_content_chunks.execute(conn, content_id=own_id, chunk_count=chunk_count)
    return Settled(row["id"], row["chunk_size"], row["chunk_count"], False)


async def drop_copy(conn: asyncpg.Connection, own_id: int) -> None:
    """The own copy of a deduplicated upload, once its row points elsewhere."""
    await Q.drop_writing_content.execute(conn, id=own_id)


async def drop_upload(conn: asyncpg.Connection, media_id: int) -> None:
    """An aborted upload, at once: its row (its own 'writing' content goes with it by
    cascade), and the contents its variants were sealed into, unless another row shows
    them by now (those are left to the reclaim)."""
    async with conn.transaction():
        shown = [r["content_id"] for r in await Q.variant_contents_of.fetch(
            conn, media_id=media_id)]
        await Q.delete_upload.execute(conn, id=media_id)
        if shown:
            try:
                async with conn.transaction():
                    await Q.drop_unshown_contents.execute(conn, ids=shown)
            except asyncpg.ForeignKeyViolationError:
                pass   # pointed at meanwhile: it stays, shown by that row


async def reclaim_orphans(pool_connection, grace_seconds: float,
                          batch: int = 100) -> tuple[int, int]:
    """Delete content unreferenced for ``grace_seconds``, in bounded batches; returns
    (contents, bytes) reclaimed. ``pool_connection`` is the store's connection()."""
    contents = freed = 0
    while True:
        try:
            async with pool_connection() as conn:
                rows = await Q.reclaim_orphaned_contents.fetch(
                    conn, grace_seconds=float(grace_seconds), batch=batch)
        except asyncpg.ForeignKeyViolationError:
            # A row came to point at one of them between this statement's snapshot and
            # its end (possible only with a grace shorter than a finishing transaction):
            # the foreign key refused the delete; the batch is tried again.
            continue
        contents += len(rows)
        freed += sum(r["file_size"] for r in rows)
        if len(rows) < batch:
            return contents, freed
