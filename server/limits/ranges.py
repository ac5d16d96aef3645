"""Multi-range requests priced in chunk reads, and ranges that share a chunk's read.

A chunk is the unit the store reads (255 KiB, 348 KB of base64). 32 one-byte ranges in
32 chunks once read 11 MB of base64 to send 32 bytes. So a multi-range request costs
what :func:`chunk_reads` counts, and one costing more than MEDIA_MAX_RANGE_CHUNKS is
answered as if it had no Range: the whole file, 200 (RFC 9110 §14.2: a server MAY
ignore a Range header; ignoring is always correct for the client, which gets the bytes
it asked for inside the full representation, and each byte it then reads costs what an
ordinary download costs). We ignore rather than reject with 416 because a 416 tells the
client those bytes do not exist: players read it as end of file, curl as "done".

Single ranges are not priced: what they read is what they send, give or take the two
partial chunks at their ends.
"""
from __future__ import annotations

from collections.abc import AsyncGenerator


from server.http.ranges import ByteRange
from server.store.media import MediaRecord, MediaStore


def chunk_reads(ranges: list[ByteRange], chunk_size: int) -> int:
    """How many chunk reads :class:`SharedReads` makes for ``ranges``, in this order: a
    range that starts in the chunk the previous one ended in reuses that read."""
    reads = 0
    held = None
    for r in ranges:
        first, last = r.start // chunk_size, r.end // chunk_size
        reads += last - first + 1 - (held == first)
        held = last
    return reads


def too_costly(ranges: object, chunk_size: int, max_reads: int) -> bool:
    """Whether a multi-range request should be served as a plain 200 instead."""
    return isinstance(ranges, list) and len(ranges) > 1 and \
        chunk_reads(ranges, chunk_size) > max_reads


class SharedReads:
    """Reads a file's ranges in request order, keeping the last chunk each range ends
    in, so the next range starting in that chunk costs no second read (the neighbouring
    ranges of a PDF viewer or a seek index usually do)."""

    def __init__(self, store: MediaStore, rec: MediaRecord):
        self.store = store
        self.rec = rec
        self.held: tuple[int, bytes] | None = None   # (seq, decoded chunk)

    async def read(self, r: ByteRange) -> AsyncGenerator[bytes, None]:
        """Yield the bytes of ``r`` (inclusive), as :meth:`MediaStore.read` does."""
        cs = self.rec.chunk_size
        first, last = r.start // cs, r.end // cs
        start = r.start
        if self.held is not None and self.held[0] == first:
            data = self.held[1]
            yield data[r.start - first * cs:min(r.end - first * cs + 1, len(data))]
            if last == first:
                return
            start = (first + 1) * cs
        if start // cs < last:
            # The chunks before the last are streamed as any download is.
            async for piece in self.store.read(self.rec, start, last * cs - 1):
                yield piece
            start = last * cs
        data = await self._chunk(last)
        self.held = (last, data)
        yield data[start - last * cs:r.end - last * cs + 1]

    def forget(self) -> None:
        """Drop the kept chunk (its client stalled); the next range re-reads it."""
        self.held = None

    async def _chunk(self, seq: int) -> bytes:
        cs = self.rec.chunk_size
        # One chunk's range; the store may yield it in several pieces.
        stream = self.store.read(self.rec, seq * cs, min(self.rec.file_size, (seq + 1) * cs) - 1)
        try:
            return b"".join([piece async for piece in stream])
        finally:
            await stream.aclose()
