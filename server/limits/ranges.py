"""Multi-range requests priced in chunk reads.

A chunk is the unit the store reads (255 KiB, 348 KB of base64). 32 one-byte ranges in
32 chunks read 11 MB of base64 to send 32 bytes. So a multi-range request costs
what :func:`chunk_reads` counts, and one costing more than MEDIA_MAX_RANGE_CHUNKS is
answered as if it had no Range: the whole file, 200 (RFC 9110 §14.2: a server MAY
ignore a Range header; ignoring is always correct for the client, which gets the bytes
it asked for inside the full representation, and each byte it then reads costs what an
ordinary download costs). We ignore rather than reject with 416 because a 416 tells the
client those bytes do not exist: players read it as end of file, curl as "done".

Single ranges are not priced: what they read is what they send, give or take the two
partial chunks at their ends.

The price is what the reader of the ranges makes of them (``SharedReads``,
api/shared_reads.py): a range starting in the chunk the previous one ended in reuses
that read.
"""
from __future__ import annotations

from server.http.ranges import ByteRange


def chunk_reads(ranges: list[ByteRange], chunk_size: int) -> int:
    """How many chunk reads ``SharedReads`` (api/shared_reads.py) makes for ``ranges``,
    in this order: a range that starts in the chunk the previous one ended in reuses
    that read."""
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
