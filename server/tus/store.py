"""The store side of tus: a small contract on the media store (same pool, same chunk
table), so the handler never sees SQL.

- ``create`` makes an invisible media_files row (no instance owns it) and its
  tus_uploads row; ``get`` reads the state back on any instance.
- ``lock``/``unlock``: a lease on the row, so two requests (on any instances) never
  write one upload at once, and no pooled connection is held while a client streams.
- ``Writer`` takes a PATCH's bytes: full chunks are stored as they fill, what does not
  fill a chunk is kept as the row's ``tail``; the offset is always ``file_size +
  len(tail)``, so a cut-off PATCH keeps every byte that arrived.
- ``finalize`` reads the stored bytes back once: the head for type detection, all of
  them for the sha256 (nothing about an upload lives only in memory).
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import uuid

import asyncpg
import pybase64

from server.errors import MessageNotFound, TusLocked, UploadExpired
from server.ingest.media_types import SNIFF_BYTES, sniff
from server.store.chunking import decode_chunk
from server.store.media import MediaRecord, MediaStore
from server.store.sqlfiles import Q

LEASE_SECONDS = 120.0


@dataclasses.dataclass(frozen=True)
class TusState:
    id: uuid.UUID
    media_id: int
    upload_length: int | None
    metadata: dict
    message_id: int
    creator: str
    expires_at: object
    expired: bool
    tail: bytes
    stored: int          # bytes in full chunks
    chunk_count: int
    chunk_size: int
    complete: bool

    @property
    def offset(self) -> int:
        return self.stored + len(self.tail)


class TusStore:
    def __init__(self, media: MediaStore):
        self.media = media

    async def create(self, *, message_id: int, creator: str, upload_length: int | None,
                     metadata: dict, original_name: str, expiry_seconds: float) -> uuid.UUID:
        upload_id = uuid.uuid4()
        async with self.media.connection() as conn, conn.transaction():
            media_id = await Q.tus_create_media.fetchval(
                conn, file_name=f"{upload_id.hex}.part", original_name=original_name,
                chunk_size=self.media.chunk_size)
            await Q.tus_create.execute(
                conn, id=upload_id, media_id=media_id, upload_length=upload_length,
                metadata=json.dumps(metadata), message_id=message_id, creator=creator,
                expiry_seconds=float(expiry_seconds))
        return upload_id

    async def get(self, upload_id: uuid.UUID) -> TusState | None:
        async with self.media.connection() as conn:
            r = await Q.tus_get.fetchrow(conn, id=upload_id)
        if r is None:
            return None
        meta = r["metadata"]
        return TusState(
            id=r["id"], media_id=r["media_id"], upload_length=r["upload_length"],
            metadata=json.loads(meta) if isinstance(meta, str) else dict(meta),
            message_id=r["message_id"], creator=r["creator"], expires_at=r["expires_at"],
            expired=r["expired"], tail=bytes(r["tail"]), stored=r["file_size"],
            chunk_count=r["chunk_count"], chunk_size=r["chunk_size"],
            complete=r["upload_state"] == "complete")

    async def lock(self, upload_id: uuid.UUID) -> uuid.UUID:
        """Take the upload's lease, or raise TusLocked (423)."""
        lock_id = uuid.uuid4()
        async with self.media.connection() as conn:
            got = await Q.tus_lock.fetchval(conn, id=upload_id, lock_id=lock_id,
                                            lease_seconds=LEASE_SECONDS)
        if got is None:
            raise TusLocked()
        return lock_id

    async def unlock(self, upload_id: uuid.UUID, lock_id: uuid.UUID) -> None:
        async with self.media.connection() as conn:
            await Q.tus_unlock.execute(conn, id=upload_id, lock_id=lock_id)

    async def set_length(self, upload_id: uuid.UUID, length: int) -> None:
        async with self.media.connection() as conn:
            await Q.tus_set_length.execute(conn, id=upload_id, upload_length=length)

    async def terminate(self, upload_id: uuid.UUID) -> None:
        async with self.media.connection() as conn:
            await Q.tus_terminate.execute(conn, id=upload_id)

    async def record(self, upload_id: uuid.UUID) -> MediaRecord | None:
        async with self.media.connection() as conn:
            row = await Q.tus_complete_record.fetchrow(conn, id=upload_id)
        return MediaRecord.from_row(row) if row is not None else None

    async def reclaim_expired(self, batch: int = 100) -> int:
        """Delete tus uploads past their expiry; how many went."""
        removed = 0
        while True:
            async with self.media.connection() as conn:
                rows = await Q.tus_reclaim_expired.fetch(conn, batch=batch)
            removed += len(rows)
            if len(rows) < batch:
                return removed

    def writer(self, state: TusState, lock_id: uuid.UUID) -> "Writer":
        return Writer(self, state, lock_id)

    async def read_back(self, state: TusState) -> tuple[bytes, bytes, int]:
        """(head for sniffing, sha256, chunk count) of the stored bytes, read in batches;
        decoding and hashing run in an executor."""
        loop = asyncio.get_running_loop()
        sha = hashlib.sha256()
        head = bytearray()
        seq, batch = 0, max(1, self.media.read_ahead)
        while True:
            async with self.media.connection() as conn:
                rows = await Q.read_chunks.fetch(conn, media_id=state.media_id,
                                                 first_seq=seq, last_seq=seq + batch - 1)
            if not rows:
                return bytes(head), sha.digest(), seq
            for r in rows:
                data = await loop.run_in_executor(None, _decode_hash, sha, r["data"])
                if len(head) < SNIFF_BYTES:
                    head += data[:SNIFF_BYTES - len(head)]
            seq += len(rows)

    async def finalize(self, state: TusState, file_size: int, audit=None) -> MediaRecord | None:
        """Make the upload visible; None when its stored head is no accepted type (the
        caller then terminates it)."""
        head, digest, chunks = await self.read_back(state)
        kind = sniff(head)
        if kind is None:
            return None
        try:
            row = await self._finalize_row(state, kind, file_size, chunks, digest, audit)
        except asyncpg.ForeignKeyViolationError:   # the message went meanwhile
            raise MessageNotFound() from None
        if row is None:
            raise UploadExpired()
        return MediaRecord.from_row(row)

    async def _finalize_row(self, state, kind, file_size, chunks, digest, audit):
        async with self.media.connection() as conn, conn.transaction():
            row = await Q.tus_finalize.fetchrow(
                conn, id=state.media_id, message_id=state.message_id,
                file_name=f"{uuid.uuid4().hex}.{kind.extension}", mime_type=kind.mime_type,
                media_type=kind.media_type, file_size=file_size, chunk_count=chunks,
                sha256=digest)
            if row is not None and audit is not None:
                await audit.write(conn, media_id=state.media_id, message_id=state.message_id)
        return row


def _decode_hash(sha, text: str) -> bytes:
    data = decode_chunk(text)
    sha.update(data)
    return data


class Writer:
    """One PATCH's bytes into the store, under the lease. Not for concurrent use."""

    def __init__(self, store: TusStore, state: TusState, lock_id: uuid.UUID):
        self.store = store
        self.state = state
        self.lock_id = lock_id
        self.cs = state.chunk_size
        self.stored = state.stored
        self.seq = state.chunk_count
        self.buf = bytearray(state.tail)

    @property
    def offset(self) -> int:
        return self.stored + len(self.buf)

    async def write(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= self.cs:
            await self._chunk(self.cs)

    async def save(self, upload_length: int | None = None, *, release: bool = False) -> None:
        """Keep what did not fill a chunk (the upload goes on later); ``release`` gives
        the lease back in the same statement."""
        async with self.store.media.connection() as conn:
            status = await Q.tus_save_tail.execute(
                conn, id=self.state.id, lock_id=self.lock_id, tail=bytes(self.buf),
                upload_length=upload_length, lease_seconds=LEASE_SECONDS,
                release=release)
        if status != "UPDATE 1":
            raise TusLocked()

    async def last(self) -> None:
        """Store the final, partial chunk (the upload is complete)."""
        if self.buf:
            await self._chunk(len(self.buf))

    async def _chunk(self, n: int) -> None:
        text = pybase64.b64encode(bytes(self.buf[:n])).decode("ascii")
        rest = bytes(self.buf[n:])
        async with self.store.media.connection() as conn:
            status = await Q.tus_append_chunk.execute(
                conn, id=self.state.id, lock_id=self.lock_id, seq=self.seq, data=text,
                stored_bytes=self.stored + n, tail=rest, lease_seconds=LEASE_SECONDS)
        if status != "UPDATE 1":
            raise TusLocked()
        del self.buf[:n]
        self.stored += n
        self.seq += 1
