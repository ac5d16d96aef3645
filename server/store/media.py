"""The media store: files kept in PostgreSQL as base64 text in fixed-size chunks.

The contract (what the HTTP layer may rely on; it never sees SQL or asyncpg):

- ``begin_upload`` starts an invisible upload; ``Upload.write`` takes the bytes in
  pieces of any size; ``Upload.finish`` makes the file visible in one statement, or
  ``Upload.abort`` removes everything it wrote. Only complete files are ever returned by
  ``stat``, ``list_page`` or ``read``. Uploads abandoned without an abort (a
  crashed instance) are reclaimed by ``reclaim_stale_uploads``.
- No database connection is held between two calls: a slow client uploading or
  downloading never ties up a pooled connection while the network is the bottleneck.
- ``read`` yields exactly the bytes of an inclusive range, touching only the chunks that
  cover it, with the next batch of chunks already being fetched while the current one
  is written out.
- Failures a client can cause come out as errors.MediaError subclasses (an unknown
  message becomes MessageNotFound here, not further up).
- ``Upload.finish`` and ``delete`` take an optional ``audit``: anything with
  ``async write(conn, **fields)`` (security.audit.Audit). It is written on the same
  connection, in the same transaction as the change, with the media and message ids:
  the change and its audit row commit together or not at all.
"""
from __future__ import annotations

import asyncio
import binascii
import collections
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from server.asyncutil import consume
from server.errors import MediaNotFound, MessageNotFound, ServiceUnavailable, UploadExpired
from server.fairgate import FairGate
from server.store.batching import ReadBatcher
from server.store.cache import ChunkCache
from server.store.chunking import Chunk, ChunkEncoder, decode_chunk
from server.store.replicas import ReadReplicas
from server.store.sqlfiles import Q

log = logging.getLogger(__name__)


# Reads spanning fewer chunks than this go through the chunk cache (photos, voice
# notes, players' probes and seeks); longer ones stream past it.
SHORT_READ_CHUNKS = 2

# Most chunks an upload stores in one statement (and so, with the writes in flight and
# those waiting for them, about three times this many chunks' base64 held per upload
# while the database is slower than the client).
WRITE_BATCH = 4
# Statements storing one upload's chunks at once, when the pool has room (Upload).
MAX_WRITES_IN_FLIGHT = 2
# append_chunks' parameters for them (sql/chunks.sql).
APPEND_SLOTS = tuple(f"data{i}" for i in range(WRITE_BATCH))


# The connection itself is unusable: the driver's state, not the statement, failed.
_CONNECTION_BROKEN = (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)
# The database cannot answer now (down, restarting, shutting down, saturated, frozen):
# 503 with Retry-After, never a 500. SQL errors in a statement are not among these.
_DATABASE_UNAVAILABLE = (asyncio.TimeoutError, OSError, *_CONNECTION_BROKEN,
                         asyncpg.PostgresConnectionError,
                         asyncpg.exceptions.OperatorInterventionError,
                         asyncpg.TooManyConnectionsError)


class StorageCorrupt(Exception):
    """A complete file is missing chunks: deleted while being read, or damaged."""


def _decode(rec: "MediaRecord", seq: int, text: bytes | memoryview) -> bytes:
    try:
        return decode_chunk(text)
    except binascii.Error:
        raise StorageCorrupt(f"media {rec.id}: chunk {seq} is not base64") from None


# Raw bytes per piece of a long read: a multiple of 3 (its base64 stands alone), and
# no more than the 64 KiB a sender writes at once (server/runtime/sending.py), so each
# piece goes to the socket as it is: no whole decoded chunk, no slice copies. Pieces
# come from glibc's heap (server/runtime/memory.py): a stalled reader holds one until
# it is let go of, about 80 KiB per stalled reader in all (more than with mapped pieces:
# the price of faster downloads), freed pages trimmed every 10 s.
PIECE = 65_505


def _pieces(rec: "MediaRecord", seq: int, text: bytes, lo: int, hi: int,
            size: int = PIECE) -> Iterator[bytes]:
    """The bytes lo..hi-1 of a chunk whose base64 is ``text``, decoded in pieces of at
    most ``size`` (a multiple of 3)."""
    view = memoryview(text)
    off = lo - lo % 3
    while off < hi:
        end = min(off + size, hi)
        raw = _decode(rec, seq, view[off // 3 * 4:-(-end // 3) * 4])
        a, b = max(lo - off, 0), end - off
        yield raw if (a, b) == (0, len(raw)) else raw[a:b]
        off += size


@dataclasses.dataclass(frozen=True)
class MediaRecord:
    id: int
    message_id: int
    file_name: str
    original_name: str
    mime_type: str
    file_size: int
    media_type: str
    is_compressed: bool
    compression_quality: int | None
    duration: float | None
    dimensions: Any
    zapi_sent: bool
    zapi_message_id: str | None
    created_at: datetime
    updated_at: datetime
    chunk_size: int
    chunk_count: int
    sha256: bytes
    # Added by media processing (migration 0005): the exact duration beside the whole
    # seconds, a voice note's waveform, the variants by name ({} when none).
    duration_exact: float | None = None
    waveform: list[int] | None = None
    variants: dict | None = None
    # Set when this record describes a variant of the media (served from its own chunks).
    variant: str | None = None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> "MediaRecord":
        return cls(**dict(row))


# Work that must commit or fail together with an upload's finalisation.
AlsoInTransaction = Callable[[asyncpg.Connection, "MediaRecord"], Awaitable[None]]


class Upload:
    """One upload in progress. Not safe for concurrent use; one request owns it."""

    def __init__(self, store: "MediaStore", media_id: int, chunk_size: int):
        self.store = store
        self.media_id = media_id
        self._enc = ChunkEncoder(chunk_size)
        # Writes in flight: the next chunks are read from the client while the previous
        # ones are being stored. Chunks that fill meanwhile wait in _queued and go
        # together in the next write (one statement, one round trip, one progress
        # update), which starts as soon as a write is done, so nothing waits for the
        # client's next bytes. A second write, of a full batch, goes in flight beside
        # the first only while the pool has two connections free and nobody waiting
        # (MediaStore.pool_has_room): two database backends then store one fast
        # upload, and a busy pool still gives each upload one. At most WRITE_BATCH
        # chunks queue: then the client is read no further until they are taken.
        self._in_flight: set[asyncio.Task] = set()
        self._queued: list[Chunk] = []
        self._closed = False

    @property
    def size(self) -> int:
        return self._enc.total

    async def write(self, data: bytes) -> None:
        """Accept the next bytes. Full chunks are stored as they fill; the latest may
        still be in flight when this returns (see ``flush``)."""
        for chunk in self._enc.feed(data):
            await self._store_chunk(chunk)

    async def flush(self) -> None:
        """Wait until every full chunk written so far is stored."""
        await self._drain()

    async def finish(self, message_id: int, audit=None, *,
                     then: AlsoInTransaction | None = None) -> MediaRecord:
        """Store the last chunk and make the file visible; returns its metadata.
        ``audit`` is written in the same transaction (see the contract above).

        ``then(conn, record)``, when given, runs in that transaction too (a legacy
        import records its map row and rewrites its messages there): if it raises, the
        file stays invisible and the caller aborts the upload as after any other failure.
        """
        for chunk in self._enc.finish():
            await self._store_chunk(chunk)
        await self._drain()
        async with self.store.connection() as conn, conn.transaction():
            try:
                row = await Q.finalize_upload.fetchrow(
                    conn, id=self.media_id, message_id=message_id,
                    file_size=self._enc.total, chunk_count=self._enc.chunks,
                    sha256=self._enc.sha256())
            except asyncpg.ForeignKeyViolationError:
                raise MessageNotFound() from None
            if row is None:  # the janitor took it: the upload sat idle far too long
                raise UploadExpired()
            if audit is not None:
                await audit.write(conn, media_id=self.media_id, message_id=message_id)
            rec = MediaRecord.from_row(row)
            if then is not None:
                await then(conn, rec)
        self._closed = True
        return rec

    async def abort(self) -> None:
        """Remove what this upload stored. Safe to call twice, and from a cancelled task."""
        if self._closed:
            return
        self._closed = True
        # Shielded: a cancelled request (client gone) must still reclaim its chunks.
        await asyncio.shield(self._abort())

    async def _abort(self) -> None:
        self._queued = []
        if self._in_flight:
            for task in self._in_flight:
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            self._in_flight.clear()
        try:
            async with self.store.connection() as conn:
                await Q.delete_upload.execute(conn, id=self.media_id)
        except Exception:  # the janitor will get it; don't mask the original error
            log.warning("could not delete aborted upload %s now; janitor will", self.media_id,
                        exc_info=True)

    async def _store_chunk(self, chunk: Chunk) -> None:
        self._queued.append(chunk)
        while not self._may_start():
            if len(self._queued) < WRITE_BATCH:
                return   # goes with the next write, started when one is done
            # The queue is full: wait for a write in flight; its done callback then
            # starts the next one with the queue (unless it failed).
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            self._check_written()
        self._check_written()
        if self._queued:
            self._write_queued()

    def _may_start(self) -> bool:
        # A second write only with a full batch: a lone chunk waits for the first.
        return not self._in_flight or (
            len(self._in_flight) < MAX_WRITES_IN_FLIGHT and len(self._queued) >= WRITE_BATCH
            and self.store.pool_has_room())

    def _write_queued(self) -> None:
        batch, self._queued = self._queued[:WRITE_BATCH], self._queued[WRITE_BATCH:]
        last = batch[-1]
        task = asyncio.ensure_future(self.store._append_chunks(
            self.media_id, batch[0].seq, [c.b64 for c in batch],
            last.seq * self._enc.chunk_size + last.nbytes))
        self._in_flight.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task) -> None:
        # The next batch goes as soon as this one is stored; a failure stays in the set
        # for the next write, flush or finish to raise.
        if task.cancelled() or task.exception() is not None:
            return
        self._in_flight.discard(task)
        if self._queued and not self._closed and self._may_start():
            self._write_queued()

    def _check_written(self) -> None:
        """Raise the failure of a write that failed."""
        for task in [t for t in self._in_flight if t.done()]:
            self._in_flight.discard(task)
            task.result()

    async def _drain(self) -> None:
        while self._in_flight or self._queued:
            if self._in_flight:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                self._check_written()
            if self._queued and self._may_start():
                self._write_queued()


class MediaStore:
    """Create, stat, read and delete media kept as chunked base64 in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool, *, chunk_size: int, read_ahead: int = 4,
                 acquire_timeout: float = 30.0, stat_cache_seconds: float = 0.0,
                 stat_cache_size: int = 10_000, instance_id: uuid.UUID | None = None,
                 chunk_cache: ChunkCache | None = None,
                 replicas: ReadReplicas | None = None):
        self.pool = pool
        self._gate = FairGate(pool.get_max_size())
        # The server process this store belongs to; recorded on the uploads it receives
        # so that, if it dies, another instance can reclaim them (see instances.sql).
        self.instance_id = instance_id
        self.chunk_size = chunk_size
        self.read_ahead = read_ahead
        self.acquire_timeout = acquire_timeout
        # Complete files never change, so the serving path may reuse their metadata.
        # The only staleness is a delete made by another instance: the chunks are gone
        # then, so a GET still fails cleanly (404) on its first read; the TTL bounds
        # how long HEAD and 304 can still answer for it.
        self._stat_ttl = stat_cache_seconds
        self._stat_max = stat_cache_size
        self._stats: collections.OrderedDict[int, tuple[float, MediaRecord]] = \
            collections.OrderedDict()
        # False while deletions made elsewhere cannot be heard (see invalidation.py):
        # the cache is then bypassed rather than trusted blindly.
        self._stat_trusted = True
        self.cache_hits = self.cache_misses = 0
        # Decoded chunks for short reads, served without a database round trip (same
        # coherence as the metadata cache).
        self._chunks = chunk_cache
        # Streaming standbys for reads of complete media (replicas.py); None: primary only.
        self.replicas = replicas
        # Bumped by every forget: a lookup that overlapped a delete does not cache what
        # it read (the notification may have been handled while it was reading).
        self._generation = 0
        self.waiting = 0
        # Cache misses that find the pool busy share a place in its queue (batching.py).
        self.batched_reads = ReadBatcher(self.connection, self._query_chunk_batch)

    def pool_has_room(self) -> bool:
        """Whether two connections are free and nobody waits: one more may be taken
        without making anyone wait, and one still stays free."""
        return self._gate.limit - self._gate.in_use >= 2 and not self._gate.waiting

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for one short piece of work; an unreachable or saturated
        database becomes ServiceUnavailable (503), not a stack trace."""
        try:
            async with self._acquire() as conn:
                try:
                    yield conn
                except _CONNECTION_BROKEN:
                    # Cut mid-statement (the server went away, or a cancelled call left
                    # the protocol half-way): never hand it to the next request.
                    conn.terminate()
                    raise
        except _DATABASE_UNAVAILABLE as e:
            raise ServiceUnavailable() from e

    async def ping(self, timeout: float) -> None:
        """Raise ServiceUnavailable unless the database answers within ``timeout``."""
        async def ping() -> None:
            async with self.pool.acquire() as conn:
                await Q.ping.fetchval(conn)
        # Not wait_for: it waits for the cancelled ping to unwind, and giving a
        # connection back to the pool can itself hang on a frozen server. Readiness
        # answers on time; the abandoned ping finishes (or times out) on its own.
        task = asyncio.ensure_future(ping())
        task.add_done_callback(consume)
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            raise ServiceUnavailable()
        if task.exception() is not None:
            raise ServiceUnavailable() from task.exception()

    async def totals(self) -> list[tuple[str, int, int]]:
        """(media_type, complete files, their bytes) for every media type stored."""
        async with self.connection() as conn:
            rows = await Q.media_totals.fetch(conn)
        return [(r["media_type"], r["files"], r["bytes"]) for r in rows]

    @contextlib.asynccontextmanager
    async def _acquire(self) -> AsyncIterator[asyncpg.Connection]:
        # Counted, so operators see requests queueing for the pool (/metrics). Queued
        # in order of arrival (server/fairgate.py), not in asyncpg's own queue, where a
        # newcomer could take the connection a waiter was woken for.
        self.waiting += 1
        try:
            await self._gate.acquire(self.acquire_timeout)
            try:
                conn = await self.pool.acquire(timeout=self.acquire_timeout)
            except BaseException:
                self._gate.release()
                raise
        finally:
            self.waiting -= 1
        try:
            yield conn
        finally:
            try:
                await self.pool.release(conn)
            finally:
                self._gate.release()

    def pool_usage(self) -> tuple[int, int, int]:
        """(connections in use, idle, requests waiting for one)."""
        size, idle = self.pool.get_size(), self.pool.get_idle_size()
        return size - idle, idle, self.waiting

    # -- instances ----------------------------------------------------------------

    async def beat(self, hostname: str, pid: int) -> None:
        """Announce this instance as alive (registers it on the first call)."""
        async with self.connection() as conn:
            await Q.instance_beat.execute(conn, id=self.instance_id, hostname=hostname,
                                          pid=pid)

    async def leave(self) -> None:
        """A clean stop: this instance's row goes."""
        async with self.connection() as conn:
            await Q.instance_gone.execute(conn, id=self.instance_id)

    async def reclaim_dead_instance_uploads(self, dead_seconds: float,
                                            batch: int = 100) -> int:
        """Delete uploads of instances silent for ``dead_seconds``; how many went."""
        removed = 0
        while True:
            async with self.connection() as conn:
                rows = await Q.reclaim_dead_instance_uploads.fetch(
                    conn, dead_seconds=float(dead_seconds), batch=batch)
                if len(rows) < batch:
                    await Q.prune_instances.execute(
                        conn, older_than_seconds=float(max(dead_seconds * 100, 86400)))
            removed += len(rows)
            if len(rows) < batch:
                return removed

    # -- messages -----------------------------------------------------------------

    async def message_exists(self, message_id: int) -> bool:
        async with self.connection() as conn:
            return await Q.message_exists.fetchval(conn, message_id=message_id)

    async def create_message(self) -> int:
        async with self.connection() as conn:
            return await Q.create_message.fetchval(conn)

    # -- writing ------------------------------------------------------------------

    async def begin_upload(self, *, file_name: str, original_name: str, mime_type: str,
                           media_type: str) -> Upload:
        """Start an invisible upload; its message is bound when it finishes."""
        async with self.connection() as conn:
            media_id = await Q.create_upload.fetchval(
                conn, file_name=file_name, original_name=original_name,
                mime_type=mime_type, media_type=media_type, chunk_size=self.chunk_size,
                instance_id=self.instance_id)
        return Upload(self, media_id, self.chunk_size)

    async def _append_chunks(self, media_id: int, first_seq: int, texts: list[bytes],
                             stored: int) -> None:
        slots = dict(zip(APPEND_SLOTS, [*texts, *[None] * (WRITE_BATCH - len(texts))],
                         strict=True))
        try:
            async with self.connection() as conn:
                status = await Q.append_chunks.execute(
                    conn, media_id=media_id, first_seq=first_seq, **slots,
                    stored_bytes=stored, chunk_count=first_seq + len(texts))
        except asyncpg.ForeignKeyViolationError:
            status = None   # the janitor removed the row: the upload sat idle too long
        if status != "UPDATE 1":
            raise UploadExpired()

    async def reclaim_stale_uploads(self, stale_seconds: float, batch: int = 100) -> int:
        """Delete uploads idle for ``stale_seconds``; returns how many were removed."""
        removed = 0
        while True:
            async with self.connection() as conn:
                rows = await Q.reclaim_stale_uploads.fetch(
                    conn, stale_seconds=float(stale_seconds), batch=batch)
            removed += len(rows)
            if len(rows) < batch:
                return removed

    # -- reading ------------------------------------------------------------------

    async def stat(self, media_id: int) -> MediaRecord:
        return await self._one(Q.get_media, id=media_id)

    async def stat_for_serving(self, media_id: int) -> MediaRecord:
        """``stat``, answered from a short-lived cache when enabled."""
        now = time.monotonic()
        hit = self._stats.get(media_id) if self._stat_trusted else None
        if hit is not None and hit[0] > now:
            self._stats.move_to_end(media_id)
            self.cache_hits += 1
            return hit[1]
        self.cache_misses += 1
        generation = self._generation
        rec = await self.stat(media_id)
        if self._stat_ttl > 0 and self._stat_trusted and generation == self._generation:
            self._stats[media_id] = (now + self._stat_ttl, rec)
            self._stats.move_to_end(media_id)
            while len(self._stats) > self._stat_max:
                self._stats.popitem(last=False)
        return rec

    def forget(self, media_id: int) -> None:
        """Drop what is cached of a file: it was deleted, here or on another instance."""
        self._generation += 1
        self._stats.pop(media_id, None)
        if self._chunks is not None:
            self._chunks.drop_media(media_id)

    def trust_cache(self, trusted: bool) -> None:
        """Whether deletions made elsewhere are being heard. Either way the cache starts
        empty: whatever it held may have been deleted while nobody was listening."""
        self._generation += 1
        self._stat_trusted = trusted
        self._stats.clear()
        if self._chunks is not None:
            self._chunks.clear()

    async def _one(self, statement, **params) -> MediaRecord:
        """A complete file's metadata: from a replica when there is one, from the
        primary when the replica lacks it (lag) or cannot answer."""
        row = None
        if self.replicas is not None:
            row = await self.replicas.fetch(lambda conn: statement.fetchrow(conn, **params))
        if row is None:
            async with self.connection() as conn:
                row = await statement.fetchrow(conn, **params)
        if row is None:
            raise MediaNotFound()
        return MediaRecord.from_row(row)

    async def list_page(self, message_id: int, limit: int, after: tuple[datetime, int] | None
                        ) -> tuple[list[MediaRecord], bool]:
        """Up to ``limit`` complete files of a message, oldest first, strictly after
        ``after`` = (created_at, id); and whether more follow."""
        async with self.connection() as conn:
            if after is None:
                rows = await Q.list_message_media_first.fetch(
                    conn, message_id=message_id, page_size=limit + 1)
            else:
                rows = await Q.list_message_media_after.fetch(
                    conn, message_id=message_id, page_size=limit + 1,
                    after_created_at=after[0], after_id=after[1])
        return [MediaRecord.from_row(r) for r in rows[:limit]], len(rows) > limit

    async def delete(self, media_id: int, audit=None) -> None:
        """Remove a complete file; ``audit`` is written in the same transaction."""
        self.forget(media_id)
        async with self.connection() as conn, conn.transaction():
            message_id = await Q.delete_media.fetchval(conn, id=media_id)
            if message_id is None:
                raise MediaNotFound()
            await Q.notify_media_deleted.execute(conn, id=media_id)
            if audit is not None:
                await audit.write(conn, media_id=media_id, message_id=message_id)

    async def write_audit(self, audit) -> None:
        """Write an audit entry that goes with no change of the store's (a token issued)."""
        async with self.connection() as conn:
            await audit.write(conn)

    async def read(self, rec: MediaRecord, start: int, end: int) -> AsyncGenerator[bytes, None]:
        """Yield the bytes ``start..end`` (inclusive) of a complete file, in pieces."""
        if not 0 <= start <= end < rec.file_size:
            raise ValueError(f"range {start}-{end} outside a file of {rec.file_size} bytes")
        cs = rec.chunk_size
        first, last = start // cs, end // cs
        if self._chunks is None or not self._stat_trusted or last - first >= SHORT_READ_CHUNKS:
            async for piece in self._read_range(rec, start, end):
                yield piece
            return
        for seq in range(first, last + 1):
            data = await self._cached_chunk(rec, seq)
            lo = start - seq * cs if seq == first else 0
            hi = end - seq * cs + 1 if seq == last else len(data)
            yield data if (lo, hi) == (0, len(data)) else data[lo:hi]

    async def _cached_chunk(self, rec: MediaRecord, seq: int) -> bytes:
        cache = self._chunks
        assert cache is not None
        # A variant's chunks are cached under its media (so dropping the media drops
        # them too) but apart from the media's own.
        key = (rec.id, seq if rec.variant is None else f"{rec.variant}:{seq}")
        data = cache.get(key)
        if data is None:
            generation = self._generation
            data = _decode(rec, seq, await self._read_one(rec, seq))
            if generation == self._generation and self._stat_trusted:
                cache.put(key, data)
        return data

    async def _read_one(self, rec: MediaRecord, seq: int) -> bytes:
        """One chunk's base64: a query of its own while the pool has room; else it
        joins the reads queued for a connection (batching.py)."""
        if rec.variant is not None or self.replicas is not None or self.pool_has_room():
            [(_, text)] = await self._read_chunks(rec, seq, seq)
            return text
        text = await self.batched_reads.read((rec.id, seq))
        if text is None:
            raise StorageCorrupt(f"media {rec.id}: chunk {seq} missing")
        return text

    @staticmethod
    async def _query_chunk_batch(conn: asyncpg.Connection, keys: list[tuple[int, int]]
                                 ) -> dict[tuple[int, int], bytes]:
        rows = await Q.serve_chunk_batch.fetch(conn, media_ids=[k[0] for k in keys],
                                               seqs=[k[1] for k in keys])
        return {(r["media_id"], r["seq"]): r["data"] for r in rows}

    async def _read_range(self, rec: MediaRecord, start: int,
                          end: int) -> AsyncGenerator[bytes, None]:
        cs = rec.chunk_size
        first, last = start // cs, end // cs

        def fetch(seq: int, batch: int) -> asyncio.Task:
            return asyncio.ensure_future(
                self._read_chunks(rec, seq, min(last, seq + batch - 1)))

        # Read-ahead: the next batch is asked for as soon as this one has arrived, so
        # that PostgreSQL reads it while this one is decoded and sent. Batches grow
        # from one chunk to read_ahead as the reader keeps up, so a reader that stalls
        # at once has cost three chunks; the sender lets go of all of it when it stalls
        # (server/runtime/sending.py). The ask goes out only when the loop gets a turn:
        # a task made here does nothing until this generator next waits, which for a
        # reader whose socket takes every piece is once the whole batch has been sent,
        # so asking early without that turn would overlap nothing (docs/performance.md,
        # "Downloads"). There is no turn after every piece as well: it would let the
        # driver read the rows as they arrive, but slows several downloads at once.
        batch = 1
        seq = first
        ahead: asyncio.Task | None = fetch(first, batch)
        try:
            while ahead is not None:
                rows = await ahead
                ahead = None
                nxt = seq + len(rows)
                rows.reverse()
                if nxt <= last:
                    batch = min(2 * batch, self.read_ahead)
                    ahead = fetch(nxt, batch)
                    await asyncio.sleep(0)   # the query goes out now
                while rows:
                    # Popped, so each chunk's text is freed once sent.
                    row_seq, text = rows.pop()
                    lo = start - row_seq * cs if row_seq == first else 0
                    hi = end - row_seq * cs + 1 if row_seq == last else cs
                    for piece in _pieces(rec, row_seq, text, lo, hi):
                        yield piece
                    del text
                seq = nxt
        finally:
            if ahead is not None:
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)

    async def _read_chunks(self, rec: MediaRecord, first: int, last: int
                           ) -> list[tuple[int, bytes]]:
        want = list(range(first, last + 1))

        def fetch(conn: asyncpg.Connection):
            if rec.variant is not None:   # a variant's chunks: same layout, own table
                return Q.read_variant_chunks.fetch(conn, media_id=rec.id, name=rec.variant,
                                                   first_seq=first, last_seq=last)
            return Q.serve_chunks.fetch(conn, media_id=rec.id, first_seq=first, last_seq=last)

        if self.replicas is not None:
            rows = await self.replicas.fetch(fetch)
            if rows is not None and [r["seq"] for r in rows] == want:
                return [(r["seq"], r["data"]) for r in rows]
        async with self.connection() as conn:
            rows = await fetch(conn)
        got = [(r["seq"], r["data"]) for r in rows]
        if [s for s, _ in got] != want:
            raise StorageCorrupt(f"media {rec.id}: chunks {first}-{last} incomplete")
        return got


# The application's media store: every handler's door to the bytes.
STORE = web.AppKey("store", MediaStore)
