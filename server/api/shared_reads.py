"""Reading a multi-range request's ranges, sharing a chunk's read between neighbours.

What a multi-range request may cost is priced in limits/ranges.py, in the reads this
reader makes.
"""
from __future__ import annotations

from collections.abc import AsyncGenerator

from server.http.ranges import ByteRange
from server.store.media import MediaRecord, MediaStore


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
