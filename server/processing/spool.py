"""The temporary file an upload's bytes are copied to while they stream in, for the
checks that need the whole file (an MP4's index can sit at its end).

Write-behind: pieces gather to ``batch`` bytes (128 KiB: two of the upload's reads)
before a write goes to a thread, and one write is in flight while the upload goes on
reading its client; pieces that arrive meanwhile go together in the next write. The
upload's own loop does not wait out a thread hop for every read: it waits for the disk
only when the disk falls behind by ``max_queued`` bytes. A paused upload holds
at most ``batch`` bytes here.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile

BATCH = 128 * 1024
MAX_QUEUED = 256 * 1024


def _write_all(fd: int, pieces: list[bytes]) -> None:
    data = memoryview(pieces[0] if len(pieces) == 1 else b"".join(pieces))
    while data:
        data = data[os.write(fd, data):]


def _close_after(write: asyncio.Future, fd: int) -> None:
    if not write.cancelled():
        write.exception()    # seen: the upload failed anyway, nobody else will look
    os.close(fd)


class Spool:
    """``await Spool.create()``, then ``write`` pieces in order, ``close``, read the
    file at ``path``, and ``remove`` it (safe at any point, twice, and when cancelled)."""

    def __init__(self, fd: int, path: str, max_queued: int = MAX_QUEUED, batch: int = BATCH):
        self.path = path
        self._batch = batch
        self._fd: int | None = fd
        self._max_queued = max_queued
        self._queued: list[bytes] = []
        self._queued_bytes = 0
        self._pending: asyncio.Future | None = None

    @classmethod
    async def create(cls, max_queued: int = MAX_QUEUED) -> "Spool":
        fd, path = await asyncio.to_thread(tempfile.mkstemp, prefix="media-spool-")
        return cls(fd, path, max_queued)

    async def write(self, data: bytes) -> None:
        if not data:
            return
        self._queued.append(data)
        self._queued_bytes += len(data)
        if self._queued_bytes < self._batch:
            return          # too little for a thread hop yet
        if self._pending is not None and not self._pending.done():
            if self._queued_bytes <= self._max_queued:
                return      # goes with the next write
            await asyncio.wait({self._pending})
        self._raise_failure()
        self._start()

    async def close(self) -> None:
        """Wait for every byte to reach the file, then close it; raises a write's
        failure (a full disk) here if it was not raised by ``write``."""
        while self._pending is not None or self._queued:
            if self._pending is not None:
                await asyncio.wait({self._pending})
                self._raise_failure()
            if self._queued:
                self._start()
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    async def remove(self) -> None:
        self._queued, self._queued_bytes = [], 0
        pending, self._pending = self._pending, None
        fd, self._fd = self._fd, None
        if fd is not None:
            if pending is not None and not pending.done():
                # A thread can't be stopped: the descriptor closes once its write is
                # over, never under it (the number could meanwhile name another file).
                pending.add_done_callback(lambda f: _close_after(f, fd))
            else:
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            # Shielded: a cancelled request still removes its file.
            await asyncio.shield(asyncio.to_thread(os.unlink, self.path))

    def _start(self) -> None:
        pieces, self._queued, self._queued_bytes = self._queued, [], 0
        assert self._fd is not None, "write after close"
        self._pending = asyncio.get_running_loop().run_in_executor(
            None, _write_all, self._fd, pieces)

    def _raise_failure(self) -> None:
        if self._pending is not None and self._pending.done():
            done, self._pending = self._pending, None
            done.result()
