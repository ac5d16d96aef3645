"""The chunk side of tus uploads (server/tus): the statements of sql/tus.sql that
write a tus upload's 'writing' content, so that only the store touches chunks and
contents. Each is guarded by the upload's lease (the tus package holds it); each
returns whether the lease was still this request's."""
from __future__ import annotations

import uuid

import asyncpg

from server.store.sqlfiles import Q


async def create_part(conn: asyncpg.Connection, *, file_name: str, original_name: str,
                      chunk_size: int) -> int:
    """The invisible media row of a new tus upload, with its 'writing' content, in the
    caller's transaction; returns the row's id."""
    return await Q.tus_create_media.fetchval(conn, file_name=file_name,
                                             original_name=original_name,
                                             chunk_size=chunk_size)


async def append_chunk(conn: asyncpg.Connection, *, upload_id: uuid.UUID,
                       lock_id: uuid.UUID, seq: int, text: str, stored_bytes: int,
                       lease_seconds: float) -> bool:
    """One full chunk that moves the offset at once (a PATCH without a checksum)."""
    status = await Q.tus_append_chunk.execute(
        conn, id=upload_id, lock_id=lock_id, seq=seq, data=text,
        stored_bytes=stored_bytes, lease_seconds=lease_seconds)
    return status == "UPDATE 1"


async def put_chunk(conn: asyncpg.Connection, *, upload_id: uuid.UUID, lock_id: uuid.UUID,
                    media_id: int, seq: int, text: str, lease_seconds: float) -> bool:
    """One full chunk past the offset (a checksummed PATCH, committed by tus_save)."""
    status = await Q.tus_put_chunk.execute(
        conn, id=upload_id, lock_id=lock_id, media_id=media_id, seq=seq, data=text,
        lease_seconds=lease_seconds)
    return status == "INSERT 0 1"


async def discard(conn: asyncpg.Connection, *, upload_id: uuid.UUID, lock_id: uuid.UUID,
                  media_id: int, first_seq: int) -> None:
    """The chunks a checksummed PATCH stored past the offset, dropped."""
    await Q.tus_discard.execute(conn, id=upload_id, lock_id=lock_id, media_id=media_id,
                                first_seq=first_seq)
