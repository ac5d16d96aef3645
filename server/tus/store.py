"""The store side of tus: a small contract on the media store (same pool, same chunk
table: the chunks through server/store/tus_chunks.py), so the handler never sees SQL.

- ``create`` makes an invisible media_files row (no instance owns it: it waits for its
  client) and its tus_uploads row; ``get`` reads the state back on any instance.
- ``lock``/``unlock``: a lease on the row, so two requests (on any instances) never
  write one upload at once, and no pooled connection is held while a client streams.
  ``holding`` renews it while a completion is processed (minutes, for a long video).
- ``Writer`` takes a PATCH's bytes: full chunks are stored as they fill, what does not
  fill a chunk is kept as the row's ``tail`` at the end of the PATCH; the offset is
  always ``file_size + len(tail)``, so a cut-off PATCH keeps every byte that arrived.
  A checksummed PATCH stores its chunks past the offset and moves it only once the
  checksum matched (``save``), or drops them (``discard``).
- ``reader`` streams the received bytes back (a batch of chunks at a time) for the
  processing pipeline; ``adopt`` (inside the transaction that makes the processed
  media visible) points the upload at that media and drops the received copy.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pybase64
from aiohttp import web

from server.asyncutil import cancel_and_wait
from server.errors import PayloadTooLarge, TusLocked, TusTooManyOpen
from server.store.chunking import decode_chunk
from server.store.media import STORE, MediaRecord, MediaStore, StoredBytes
from server.store import tus_chunks
from server.store.sqlfiles import Q

log = logging.getLogger(__name__)

LEASE_SECONDS = 120.0   # MEDIA_TUS_LEASE_SECONDS' default


@dataclasses.dataclass(frozen=True)
class TusState:
    id: uuid.UUID
    media_id: int
    upload_length: int | None
    metadata: dict
    message_id: int
    creator: str
    creator_identity: str | None
    original_name: str
    expires_at: object
    expired: bool
    held: bool           # a request holds the lease now (on any instance)
    tail: bytes
    stored: int          # bytes in full chunks
    chunk_count: int
    chunk_size: int
    complete: bool
    content_id: int | None = None   # the 'writing' content the PATCHes fill

    @property
    def offset(self) -> int:
        # Once complete, the media may be smaller than what was sent (a stripped photo):
        # the upload's own offset is its length.
        if self.complete and self.upload_length is not None:
            return self.upload_length
        return self.stored + len(self.tail)

    @property
    def received(self) -> bool:
        """Every byte is stored, the upload is not (yet) the media: its completion is
        running, or it was cut short (a dead instance) and must run again."""
        return (not self.complete and self.upload_length is not None
                and self.offset == self.upload_length)


class TusStore:
    def __init__(self, media: MediaStore, lease_seconds: float = LEASE_SECONDS):
        self.media = media
        self.lease_seconds = float(lease_seconds)

    async def create(self, *, message_id: int, creator: str, creator_identity: str,
                     upload_length: int | None, metadata: dict, original_name: str,
                     expiry_seconds: float, max_open: int,
                     max_bytes: int | None = None) -> uuid.UUID:
        """A new upload, unless its creator has ``max_open`` unfinished ones already
        (TusTooManyOpen) or, with ``max_bytes`` (a token's), their bytes and this one's
        length would pass it (PayloadTooLarge). Counted and added under the creator's
        lock: concurrent creations cannot pass the limits together."""
        upload_id = uuid.uuid4()
        async with self.media.connection() as conn, conn.transaction():
            await Q.tus_lock_creator.execute(conn, identity=creator_identity)
            held = await Q.tus_held_by_creator.fetchrow(conn, identity=creator_identity,
                                                        except_id=None)
            if held["open"] >= max_open:
                raise TusTooManyOpen()
            if max_bytes is not None and held["held"] + (upload_length or 0) > max_bytes:
                raise PayloadTooLarge(_budget_message(max_bytes, held["held"]))
            media_id = await tus_chunks.create_part(
                conn, file_name=f"{upload_id.hex}.part", original_name=original_name,
                chunk_size=self.media.chunk_size)
            await Q.tus_create.execute(
                conn, id=upload_id, media_id=media_id, upload_length=upload_length,
                metadata=json.dumps(metadata), message_id=message_id, creator=creator,
                creator_identity=creator_identity, expiry_seconds=float(expiry_seconds))
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
            message_id=r["message_id"], creator=r["creator"],
            creator_identity=r["creator_identity"], original_name=r["original_name"],
            expires_at=r["expires_at"], expired=r["expired"], held=r["held"],
            tail=bytes(r["tail"]), stored=r["file_size"], chunk_count=r["chunk_count"],
            chunk_size=r["chunk_size"], complete=r["upload_state"] == "complete",
            content_id=r["content_id"])

    async def reserve(self, state: TusState, lock_id: uuid.UUID, *, max_bytes: int,
                      end: int) -> int:
        """A PATCH of a deferred-length upload made by a token: the furthest offset it
        may reach, ``end`` or less, so that the token's unfinished uploads together stay
        within ``max_bytes``. Reserved until the PATCH saves (or its lease runs out),
        so two PATCHes of one token at once cannot spend the same bytes."""
        async with self.media.connection() as conn, conn.transaction():
            await Q.tus_lock_creator.execute(conn, identity=state.creator_identity)
            held = await Q.tus_held_by_creator.fetchrow(
                conn, identity=state.creator_identity, except_id=state.id)
            allowed = max(0, min(end, max_bytes - held["held"]))
            await Q.tus_reserve.execute(conn, id=state.id, lock_id=lock_id,
                                        reserved=allowed)
        return allowed

    async def lock(self, upload_id: uuid.UUID) -> uuid.UUID:
        """Take the upload's lease, or raise TusLocked (423)."""
        lock_id = uuid.uuid4()
        async with self.media.connection() as conn:
            got = await Q.tus_lock.fetchval(conn, id=upload_id, lock_id=lock_id,
                                            lease_seconds=self.lease_seconds)
        if got is None:
            raise TusLocked()
        return lock_id

    async def unlock(self, upload_id: uuid.UUID, lock_id: uuid.UUID) -> None:
        async with self.media.connection() as conn:
            await Q.tus_unlock.execute(conn, id=upload_id, lock_id=lock_id)

    async def renew(self, upload_id: uuid.UUID, lock_id: uuid.UUID) -> bool:
        async with self.media.connection() as conn:
            return await Q.tus_renew.fetchval(conn, id=upload_id, lock_id=lock_id,
                                              lease_seconds=self.lease_seconds) is not None

    @contextlib.asynccontextmanager
    async def holding(self, upload_id: uuid.UUID, lock_id: uuid.UUID):
        """Keep the lease alive for the block (renewed three times per lease period),
        however long it takes; the lease itself still runs out if this process dies."""
        async def renew_forever() -> None:
            while True:
                await asyncio.sleep(self.lease_seconds / 3)
                try:
                    if not await self.renew(upload_id, lock_id):
                        log.warning("tus upload %s: lease lost while completing", upload_id)
                        return   # adopt() will refuse: someone else has it now
                except Exception:   # a passing database error: try again next period
                    log.warning("tus upload %s: lease renewal failed", upload_id,
                                exc_info=True)

        task = asyncio.ensure_future(renew_forever())
        try:
            yield
        finally:
            await cancel_and_wait(task)

    async def terminate(self, upload_id: uuid.UUID, lock_id: uuid.UUID) -> None:
        async with self.media.connection() as conn:
            await Q.tus_terminate.execute(conn, id=upload_id, lock_id=lock_id)

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

    def writer(self, state: TusState, lock_id: uuid.UUID, *,
               deferred: bool = False) -> "Writer":
        return Writer(self, state, lock_id, deferred=deferred)

    def reader(self, state: TusState, stored: StoredBytes | None = None
               ) -> Callable[[], Awaitable[bytes]]:
        """The received bytes, one chunk per call, b"" at the end: a batch of
        ``read_ahead`` chunks is fetched at a time (never the whole file in memory),
        decoded in an executor. ``stored``, when given, gets their sha256 and size once
        the last is read: an upload begun on it (MediaStore.begin_upload(reuse=...))
        then becomes the media without writing them again."""
        pieces = self._pieces(state, stored)

        async def read() -> bytes:
            return await anext(pieces, b"")
        return read

    def stored_bytes(self, state: TusState) -> StoredBytes:
        """The received bytes as stored already, for reader() to fill in."""
        return StoredBytes(state.content_id)

    async def _pieces(self, state: TusState,
                      stored: StoredBytes | None) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        seq, batch = 0, max(1, self.media.read_ahead)
        sha, size = hashlib.sha256(), 0
        # Only the committed chunks: a checksummed PATCH cut short by a dead instance
        # may have left some past them.
        while seq < state.chunk_count:
            rows = await self.media.content_chunks(
                state.content_id, seq, min(seq + batch, state.chunk_count) - 1)
            if not rows:
                raise RuntimeError(f"tus upload {state.id}: chunk {seq} missing")
            for row_seq, text in rows:
                if row_seq != seq:   # a gap would silently corrupt the file
                    raise RuntimeError(f"tus upload {state.id}: chunk {seq} missing")
                data = await loop.run_in_executor(None, decode_chunk, text)
                sha.update(data)
                size += len(data)
                yield data
                seq += 1
        if stored is not None:
            stored.sha256, stored.size = sha.digest(), size

    def adopt(self, state: TusState, lock_id: uuid.UUID):
        """For ``Job.finish(then=...)``: in the transaction that makes the processed
        media visible, the upload becomes that media and its received copy goes. If
        this request lost the lease meanwhile, TusLocked rolls it all back."""
        async def then(conn, rec: MediaRecord) -> None:
            part = await Q.tus_adopt.fetchval(conn, id=state.id, lock_id=lock_id,
                                              media_id=rec.id)
            if part is None:
                raise TusLocked()
            await Q.tus_drop_part.execute(conn, id=part)
        return then


def _budget_message(max_bytes: int, held: int) -> str:
    return (f"this token's unfinished uploads hold {held} of its {max_bytes} bytes; "
            f"finish or terminate one first")


class Writer:
    """One PATCH's bytes into the store, under the lease. Not for concurrent use.

    Full chunks are stored as they fill, so memory holds at most a chunk and a read.
    Without ``deferred`` each chunk moves the offset at once (a cut-off PATCH keeps
    what arrived). With ``deferred`` (a PATCH with Upload-Checksum) the chunks are
    stored past the offset, which moves only at :meth:`save`, once the checksum
    matched; :meth:`discard` drops them instead. Either way the bytes that do not fill
    a chunk are written once, by :meth:`save`: every byte is written once, whatever the
    size of the PATCH.
    """

    def __init__(self, store: TusStore, state: TusState, lock_id: uuid.UUID, *,
                 deferred: bool = False):
        self.store = store
        self.state = state
        self.lock_id = lock_id
        self.deferred = deferred
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
        """Commit the offset: the chunks stored so far and the bytes that did not fill
        one (the upload goes on later); ``release`` gives the lease back in the same
        statement."""
        async with self.store.media.connection() as conn:
            status = await Q.tus_save.execute(
                conn, id=self.state.id, lock_id=self.lock_id, tail=bytes(self.buf),
                upload_length=upload_length, lease_seconds=self.store.lease_seconds,
                release=release, stored_bytes=self.stored, chunk_count=self.seq)
        if status != "UPDATE 1":
            raise TusLocked()

    async def discard(self) -> None:
        """Drop what this (deferred) PATCH stored: the upload stays at its offset."""
        async with self.store.media.connection() as conn:
            await tus_chunks.discard(conn, upload_id=self.state.id, lock_id=self.lock_id,
                                     media_id=self.state.media_id,
                                     first_seq=self.state.chunk_count)
        self.stored, self.seq = self.state.stored, self.state.chunk_count
        self.buf = bytearray(self.state.tail)

    async def last(self) -> None:
        """Store the final, partial chunk (every byte is in); :meth:`save` commits it."""
        if self.buf:
            await self._chunk(len(self.buf))

    async def _chunk(self, n: int) -> None:
        text = pybase64.b64encode(bytes(self.buf[:n])).decode("ascii")
        async with self.store.media.connection() as conn:
            if self.deferred:
                ok = await tus_chunks.put_chunk(
                    conn, upload_id=self.state.id, lock_id=self.lock_id,
                    media_id=self.state.media_id, seq=self.seq, text=text,
                    lease_seconds=self.store.lease_seconds)
            else:
                ok = await tus_chunks.append_chunk(
                    conn, upload_id=self.state.id, lock_id=self.lock_id, seq=self.seq,
                    text=text, stored_bytes=self.stored + n,
                    lease_seconds=self.store.lease_seconds)
        if not ok:
            raise TusLocked()
        del self.buf[:n]
        self.stored += n
        self.seq += 1


async def reclaim_expired_tus(app: web.Application) -> int:
    """The janitor's part for tus: expired uploads go; how many."""
    return await TusStore(app[STORE]).reclaim_expired()
