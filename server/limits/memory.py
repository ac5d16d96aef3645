"""Give freed memory back to the system (glibc).

glibc serves large allocations (base64 chunks, decoded chunks) from mmap and returns
them on free, but after the first such free it raises its mmap threshold (up to
32 MiB), and later chunks come from the heap, where fragmentation keeps them: 2,000
slow readers left 5.2 GB behind after they had gone. Fixing the threshold turns the
adjustment off, so every chunk-sized buffer is mapped and unmapped again.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3          # from glibc's malloc.h
MMAP_THRESHOLD = 128 * 1024    # glibc's initial value, now fixed


def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold; False (and nothing changed) off glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    log.debug("malloc mmap threshold fixed at %d: %s", MMAP_THRESHOLD, ok)
    return ok
