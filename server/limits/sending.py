"""Sending a response to a client that may read slowly, or not at all.

Before: no send timeout (a client reading 1 byte/s was still being served after 200 s),
and each slow reader held a decoded chunk, the rest of its batch and the next batch
(about 2.7 MB; 2,000 of them, 5.5 GB). Now:

- The body goes out in slices of SLICE bytes, each handed to the socket only once it
  has drained below its high-water mark. A slice the socket does not take within
  MEDIA_SEND_TIMEOUT_SECONDS means the client makes no progress: the connection is
  closed (a 1 byte/s reader cannot take 64 KiB in 60 s either).
- A client that has not taken a slice within STALL_GRACE is stalled: the sender lets go
  of everything it holds from the store (the decoded chunk, the read-ahead) and waits
  for the socket with nothing but that one slice in hand; when the client reads again,
  the store is asked again from where it stopped. A stalled reader then costs one
  slice and its connection, whatever the size of the file.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable

from aiohttp import web

log = logging.getLogger(__name__)

SLICE = 64 * 1024      # the socket's default high-water mark: one slice fills it
STALL_GRACE = 1.0      # seconds before a reader counts as stalled and is let go of

Body = AsyncGenerator[bytes, None]


def _consume(task: asyncio.Task) -> None:
    # A write whose client vanished fails; whoever awaits it sees that, and when
    # nobody does (a cancelled handler) it must not be logged as unretrieved.
    if not task.cancelled():
        task.exception()


class SendTimeout(ConnectionError):
    """The client took nothing for MEDIA_SEND_TIMEOUT_SECONDS: the connection is closed."""


class Sender:
    """Writes one response's body with the send timeout and the stall rule."""

    def __init__(self, request: web.Request, resp: web.StreamResponse, timeout: float,
                 on_sent: Callable[[int], None] = lambda n: None):
        self.request = request
        self.resp = resp
        self.timeout = timeout
        self.on_sent = on_sent
        if request.transport is not None:
            # Pause (and so wait in drain) as soon as one slice is queued, not two: a
            # stalled reader then holds one slice in user space. The kernel's socket
            # buffer, which does the real buffering, is untouched.
            request.transport.set_write_buffer_limits(high=SLICE // 2)

    async def _write(self, data: bytes) -> None:
        await self.resp.write(data)
        # resp.write drains only every 64 KiB written; wait for the socket now, so no
        # more than one slice is ever queued in user space.
        await self.request.writer.drain()
        self.on_sent(len(data))

    async def send(self, data: bytes) -> asyncio.Task | None:
        """Hand ``data`` (at most one slice) to the socket. None when the client took
        it within STALL_GRACE; else the write still waiting, for :meth:`finish`."""
        task = asyncio.ensure_future(self._write(data))
        task.add_done_callback(_consume)
        try:
            done, _ = await asyncio.wait({task}, timeout=min(STALL_GRACE, self.timeout))
        except asyncio.CancelledError:
            task.cancel()   # the handler was cancelled (client gone): so is its write
            raise
        if done:
            task.result()
            return None
        return task

    async def finish(self, pending: asyncio.Task) -> None:
        """Wait for a stalled write, up to the send timeout in all; close on expiry."""
        try:
            await asyncio.wait_for(pending, max(0.0, self.timeout - STALL_GRACE))
        except asyncio.TimeoutError:
            if self.request.transport is not None:
                self.request.transport.close()
            raise SendTimeout(f"no progress for {self.timeout:g} s") from None

    async def send_all(self, data: bytes) -> None:
        """Send bytes nothing else holds (headers of parts, small pieces)."""
        for off in range(0, len(data), SLICE):
            pending = await self.send(data[off:off + SLICE])
            if pending is not None:
                await self.finish(pending)

    async def send_stream(self, stream: Body, start: int, end: int,
                          reopen: Callable[[int, int], Body]) -> None:
        """Send the bytes ``start..end`` that ``stream`` yields. When the client
        stalls, ``stream`` is closed (its memory let go of) and, once the client reads
        again, ``reopen(pos, end)`` continues from the next byte to send."""
        pos = start
        while stream is not None:
            pending = None
            try:
                async for piece in stream:
                    for off in range(0, len(piece), SLICE):
                        part = piece if len(piece) <= SLICE else piece[off:off + SLICE]
                        pos += len(part)
                        pending = await self.send(part)
                        if pending is not None:
                            break
                    if pending is not None:
                        break
            finally:
                await stream.aclose()
            stream = None
            if pending is not None:
                del piece, part   # let go of the chunk while the client is away
                await self.finish(pending)
                if pos <= end:
                    stream = reopen(pos, end)
