"""Sending a response to a client that may read slowly, or not at all.

A slow reader must cost neither time without end nor memory in proportion to what it
is sent (docs/performance.md tells what it cost without these rules):

- The body goes out in slices of SLICE bytes, each handed to the socket only once it
  has drained below its high-water mark. A slice the socket does not take within
  MEDIA_SEND_TIMEOUT_SECONDS means the client makes no progress: the connection is
  closed (a 1 byte/s reader cannot take 16 KiB in 60 s either).
- A client that has not taken a slice within STALL_GRACE is stalled: the sender lets go
  of everything it holds from the store (the decoded chunk, the read-ahead) and waits
  for the socket with nothing but that one slice in hand; when the client reads again,
  the store is asked again from where it stopped. A stalled reader then costs one
  slice and its connection, whatever the size of the file.
- At most a few responses read from the store at once (:class:`StreamSlots`, half the
  pool): readers queued for the pool would each hold a chunk and a read-ahead batch
  while they wait, and their queue would make a small GET wait seconds for a
  connection. The others wait for a slot holding nothing
  but their connection. A holder lets go when it has held its slot QUANTUM seconds
  while others wait (at the next piece), or when the client hasn't taken a slice
  within YIELD_GRACE while others wait, and asks again from where it stopped.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable

from aiohttp import web

from server.asyncutil import consume
from server.fairgate import FairGate

log = logging.getLogger(__name__)

SLICE = 16 * 1024      # what a stalled reader holds: the less, the more of them fit
# A piece up to this size goes out in one write when nothing is queued for the socket
# (a small photo from the cache: one send instead of four). A reader that stalls has
# a queue, and from then on gets SLICE bytes at a time; at most one WHOLE is ever held.
WHOLE = 64 * 1024
STALL_GRACE = 1.0      # seconds before a reader counts as stalled and is let go of
YIELD_GRACE = 0.01     # ... when others wait for a stream slot
QUANTUM = 1.0          # seconds a reader keeps its slot while others wait

Body = AsyncGenerator[bytes, None]


class StreamSlots(FairGate):
    """At most ``limit`` responses reading from the store at once (half the pool),
    first come first served. A waiter holds nothing but its connection."""


class SendTimeout(ConnectionError):
    """The client took nothing for MEDIA_SEND_TIMEOUT_SECONDS: the connection is closed."""


class Sender:
    """Writes one response's body with the send timeout and the stall rule."""

    def __init__(self, request: web.Request, resp: web.StreamResponse, timeout: float,
                 on_sent: Callable[[int], None] = lambda n: None,
                 slots: StreamSlots | None = None):
        self.request = request
        self.resp = resp
        self.timeout = timeout
        self.on_sent = on_sent
        self.slots = slots
        self.waited = 0.0   # of the send timeout, spent in the current send's grace
        self.high = SLICE // 2
        if request.transport is not None:
            # Pause (and so wait in drain) as soon as one slice is queued, not two: a
            # stalled reader then holds one slice in user space. The kernel's socket
            # buffer, which does the real buffering, is untouched.
            request.transport.set_write_buffer_limits(high=self.high)

    async def _drained(self, n: int) -> None:
        await self.request.writer.drain()
        self.on_sent(n)

    async def send(self, data: bytes) -> asyncio.Task | None:
        """Hand ``data`` (one slice, or one WHOLE piece) to the socket. None when the client took
        it within STALL_GRACE; else the write still waiting, for :meth:`finish`."""
        n = len(data)
        # Not resp.write, which drains only every 64 KiB written (and holds the data
        # meanwhile): wait for the socket after each slice, so no more than one slice
        # is ever queued in user space. Without compression this write doesn't wait.
        await self.request.writer.write(data, drain=False)
        del data
        transport = self.request.transport
        if transport is not None and transport.get_write_buffer_size() <= self.high:
            # The socket took it (all but a little): no task, no wait. A 16 KiB slice
            # costs a write then, as a whole chunk would.
            self.on_sent(n)
            return None
        # The socket is full: wait for it in a task that can outlive the grace (never
        # a timeout around the drain itself: aiohttp's drain waiter is shared by every
        # drain of the connection, and cancelling it breaks the next one).
        task = asyncio.ensure_future(self._drained(n))
        # A write whose client vanished fails; nobody may await it (a cancelled handler).
        task.add_done_callback(consume)
        grace = YIELD_GRACE if self.slots is not None and self.slots.waiting else STALL_GRACE
        self.waited = min(grace, self.timeout)
        try:
            done, _ = await asyncio.wait({task}, timeout=self.waited)
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
            await asyncio.wait_for(pending, max(0.0, self.timeout - self.waited))
        except asyncio.TimeoutError:
            if self.request.transport is not None:
                self.request.transport.close()
            raise SendTimeout(f"no progress for {self.timeout:g} s") from None

    def _idle(self) -> bool:
        transport = self.request.transport
        return transport is not None and transport.get_write_buffer_size() == 0

    async def send_all(self, data: bytes) -> None:
        """Send bytes nothing else holds (headers of parts, small pieces)."""
        if len(data) <= WHOLE and self._idle():
            pending = await self.send(data)
            if pending is not None:
                await self.finish(pending)
            return
        for off in range(0, len(data), SLICE):
            pending = await self.send(data[off:off + SLICE])
            if pending is not None:
                await self.finish(pending)

    async def send_stream(self, stream: Body, start: int, end: int,
                          reopen: Callable[[int, int], Body],
                          on_stall: Callable[[], None] = lambda: None) -> None:
        """Send the bytes ``start..end`` that ``stream`` yields, holding a stream slot
        (taken by the caller when ``self.slots`` is set) while it reads. When the client
        stalls, or lets others wait, ``stream`` is closed (its memory let go of) and the
        slot given up; once the client reads again and a slot is free,
        ``reopen(pos, end)`` continues from the next byte to send."""
        loop = asyncio.get_running_loop()
        pos = start
        try:
            while stream is not None:
                pending = None
                exhausted = False
                began = loop.time()
                try:
                    while pending is None:
                        try:
                            piece = await anext(stream)
                        except StopAsyncIteration:
                            exhausted = True
                            break
                        step = WHOLE if len(piece) <= WHOLE and self._idle() else SLICE
                        for off in range(0, len(piece), step):
                            part = piece if len(piece) <= step else piece[off:off + step]
                            pos += len(part)
                            pending = await self.send(part)
                            del part
                            if pending is not None:
                                break
                        # Not held while the next piece is awaited: a reader waiting
                        # for the database would keep its last chunk.
                        del piece
                        if pending is None and pos <= end and self._should_yield(began, loop):
                            break
                finally:
                    await stream.aclose()
                stream = None
                if self.slots is not None:
                    self.slots.release()
                if pending is not None:
                    on_stall()   # whatever else the caller keeps for this response
                    await self.finish(pending)
                if pos <= end and not exhausted:
                    if self.slots is not None:
                        await self.slots.acquire()
                    stream = reopen(pos, end)
        except BaseException:
            if stream is not None and self.slots is not None:
                self.slots.release()   # the slot taken for a stream never read from
            raise

    def _should_yield(self, began: float, loop: asyncio.AbstractEventLoop) -> bool:
        return self.slots is not None and self.slots.waiting > 0 and \
            loop.time() - began >= QUANTUM


# The application's stream slots, shared fairly among clients.
STREAM_SLOTS = web.AppKey("stream_slots", StreamSlots)
