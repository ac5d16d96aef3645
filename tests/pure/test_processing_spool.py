"""The upload spool's write-behind: bytes in order, pieces batched while a write is in
flight, memory bounded when the disk falls behind, failures raised, and removal that
never closes a descriptor under a thread still writing to it. A pipe stands in for a
disk that stops taking bytes (its reader decides when they move)."""
from __future__ import annotations

import asyncio
import os
import threading

import pytest

from server.processing.spool import Spool


def _drain(fd: int, out: bytearray) -> threading.Thread:
    def run():
        while block := os.read(fd, 1 << 16):
            out.extend(block)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


async def test_small_pieces_wait_for_a_batch_before_a_thread_hop():
    r, w = os.pipe()
    spool = Spool(w, "/nonexistent/spool", batch=10_000)
    for _ in range(9):
        await spool.write(b"q" * 1000)
    assert spool._pending is None and spool._queued_bytes == 9000
    await spool.write(b"q" * 1000)            # the batch is full: one write
    assert spool._pending is not None and spool._queued == []
    await spool.close()
    assert os.read(r, 20_000) == b"q" * 10_000
    os.close(r)


async def test_the_file_holds_every_piece_in_order():
    spool = await Spool.create()
    pieces = [os.urandom(n) for n in (1, 65536, 7, 300_000, 0, 4096, 123_457)]
    try:
        for p in pieces:
            await spool.write(p)
        await spool.close()
        with open(spool.path, "rb") as f:
            assert f.read() == b"".join(pieces)
    finally:
        await spool.remove()
    assert not os.path.exists(spool.path)


async def test_a_disk_that_falls_behind_holds_the_upload_back_at_the_bound():
    r, w = os.pipe()
    spool = Spool(w, "/nonexistent/spool", max_queued=256 * 1024, batch=1)
    piece = b"x" * 65536
    got = bytearray()
    try:
        # The pipe takes 64 KiB, then its writer blocks in the thread: what follows
        # queues up to the bound, and the write past it waits.
        accepted = 0
        while accepted < 32:
            task = asyncio.ensure_future(spool.write(piece))
            await asyncio.wait({task}, timeout=0.5)
            accepted += 1
            if not task.done():
                break
        queued = spool._queued_bytes
    finally:
        reader = _drain(r, got)
    await task
    for _ in range(32 - accepted):
        await spool.write(piece)
    await spool.close()
    reader.join(5)
    os.close(r)
    # bounded: what the pipe holds, the write in flight, the queue; not all 2 MiB
    assert 3 <= accepted <= 12, accepted
    assert queued <= 256 * 1024 + len(piece)
    assert bytes(got) == piece * 32


async def test_pieces_arriving_during_a_write_go_together_in_the_next():
    r, w = os.pipe()
    spool = Spool(w, "/nonexistent/spool", batch=1)
    await spool.write(b"a" * 100_000)         # more than the pipe holds: stays in flight
    for _ in range(3):
        await spool.write(b"b" * 1000)        # returns at once: queued behind it
    assert len(spool._queued) == 3
    got = bytearray()
    reader = _drain(r, got)
    await spool.close()
    reader.join(5)
    os.close(r)
    assert bytes(got) == b"a" * 100_000 + b"b" * 3000


async def test_a_failed_write_is_raised_and_nothing_hangs(tmp_path):
    path = tmp_path / "ro"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)           # every write fails with EBADF
    spool = Spool(fd, str(path), batch=1)
    with pytest.raises(OSError):
        for _ in range(3):
            await spool.write(b"z" * 1000)
            await asyncio.sleep(0.05)
        await spool.close()
    await spool.remove()
    assert not path.exists()


async def test_removing_during_a_write_closes_the_descriptor_only_after_it():
    r, w = os.pipe()
    spool = Spool(w, "/nonexistent/spool", batch=1)
    await spool.write(b"a" * 100_000)         # more than the pipe holds: blocked
    await asyncio.sleep(0.1)
    await spool.remove()
    os.fstat(w)                               # still open: the thread is in its write
    got = bytearray()
    reader = _drain(r, got)                   # ends at EOF: once the write end is closed
    for _ in range(250):
        if not reader.is_alive():
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the descriptor was never closed")
    os.close(r)
    assert bytes(got) == b"a" * 100_000       # the write was whole before the close
