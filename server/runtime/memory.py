"""Give freed memory back to the system (glibc), without paying for it on every chunk.

Two habits of glibc's allocator keep what slow readers cost after they have gone:

glibc serves large allocations (base64 chunks, decoded chunks) from mmap and returns
them on free, but after the first such free it raises its mmap threshold (up to
32 MiB), and later chunks come from the heap, where fragmentation keeps them long
after their readers have gone (docs/performance.md). Fixing the threshold (at 1 MiB)
turns the adjustment off: what is larger is always mapped and unmapped again. And
it gives back only the top of its heap; :func:`memory_trimmer` hands back the free
pages inside it too.

A third habit makes the first fix expensive: fixing the mmap threshold also fixes the
trim threshold at its default, 128 KiB, so each time a chunk's rows are freed the top
of the heap goes back to the kernel, and the next chunk faults its pages in again,
zeroed, page by page, at a large share of the worker's CPU (docs/performance.md,
"Downloads"). The trim threshold is fixed at TRIM_THRESHOLD instead: the top of the
heap is given back once that much of it is free, and the trimmer gives back the rest
every TRIM_EVERY_SECONDS, so only what a busy worker reuses from one chunk to the next
stays mapped between two trims.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3          # from glibc's malloc.h
# Above a chunk's base64 (348 KB) and the rows asyncpg joins: those come from the heap,
# reused from one chunk to the next, rather than from a fresh mapping faulted in page by
# page (below a chunk, page faults are most of a download's CPU). What stays bounded is
# what the stream slots and the stall rule hold (runtime/sending.py), and the trimmer
# hands the heap's free pages back.
MMAP_THRESHOLD = 1024 * 1024
M_TRIM_THRESHOLD = -1          # from glibc's malloc.h
# Room for what the stream slots' readers reuse from one chunk to the next (a batch of
# rows and the driver's buffers, about 3 MiB per reader, 5 readers per worker at the
# default pool), with a margin (docs/performance.md). Freed memory above it goes back
# at once, the rest within TRIM_EVERY_SECONDS; the peak is what was in use, never more.
TRIM_THRESHOLD = 16 * 1024 * 1024


def return_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds; False (and nothing changed) off glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) \
        and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    log.debug("malloc thresholds fixed, mmap %d, trim %d: %s", MMAP_THRESHOLD,
              TRIM_THRESHOLD, ok)
    return ok


TRIM_EVERY_SECONDS = 10.0


def _malloc_trim():
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return trim


async def memory_trimmer(app) -> None:
    """Every TRIM_EVERY_SECONDS, hand the heap's free pages back (glibc malloc_trim).

    Freed connections leave small objects scattered over the heap; glibc only gives
    back its top, so without this a burst of stalled readers keeps most of what they
    cost after they have gone. A full garbage collection first frees what
    cycles still hold (about a millisecond on the loop every 10 s on an idle worker,
    since processes.py freezes what exists at start-up out of its sight; 10-36 ms on a
    loaded one with 2,000 files' metadata cached, docs/performance.md). The trim runs in
    a thread (it is thread-safe, and needn't take its milliseconds from the loop)."""
    trim = _malloc_trim()
    if trim is None:
        return
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(TRIM_EVERY_SECONDS)
        # A closed connection leaves cycles (an exception's traceback holds the frames
        # that held its buffers) that only a full collection frees; an idle server
        # allocates too little to trigger one by itself for a long time.
        gc.collect()
        await loop.run_in_executor(None, trim, 0)
