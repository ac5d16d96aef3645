"""server/runtime/balancer.py: the supervisor hands each connection to the ready worker with
the fewest open. Here both sides run in one process, over real sockets on loopback;
tests/process/test_workers.py checks the same across real worker processes."""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import resource
import socket
import time

import pytest

from server.runtime.balancer import (ACCEPT_PAUSE, Balancer, HandedConnections, choose,
                                 listening_sockets)


@pytest.mark.parametrize("counts, start, expected", [
    ([0, 0], 0, [0, 1]),
    ([0, 0], 1, [1, 0]),                   # equal workers take turns
    ([3, 1, 2], 0, [1, 2, 0]),             # fewest open first
    ([2, 2, 1], 1, [2, 1, 0]),
    ([None, 5], 0, [1]),                   # not ready: never chosen
    ([None, None], 0, []),
    ([4, None, 4, 0], 2, [3, 2, 0]),       # ties from the turn on, wrapping round
])
def test_choose(counts, start, expected):
    assert choose(counts, start) == expected


class Worker:
    """One side of the balancer in this loop: it answers each connection with its name
    and keeps it open until the client closes it."""

    def __init__(self, name: str, balancer: Balancer, index: int):
        self.name = name
        self.handed = HandedConnections(balancer.channel_for(index), balancer.closed, index)
        self.open = 0

    def start(self) -> None:
        self.handed.start(self._protocol)

    def _protocol(self) -> asyncio.Protocol:
        worker = self

        class Tag(asyncio.Protocol):
            def connection_made(self, transport):
                worker.open += 1
                transport.write(worker.name.encode())

            def connection_lost(self, exc):
                worker.open -= 1
                worker.handed.connection_closed()
        return Tag()


class Pair:
    def __init__(self, count: int = 2, kind: int | None = None):
        self.listeners = listening_sockets("127.0.0.1", 0)
        self.port = self.listeners[0].getsockname()[1]
        self.balancer = Balancer(self.listeners, multiprocessing.RawArray("q", count), count,
                                 kind)
        self.workers = [Worker(f"w{i}", self.balancer, i) for i in range(count)]
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "Pair":
        async def supervise():
            while True:          # the supervisor's loop, a turn at a time
                self.balancer.wait(0)
                await asyncio.sleep(0.002)
        self._task = asyncio.ensure_future(supervise())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        for w in self.workers:
            w.handed.stop()
        self.balancer.close()

    async def connect(self) -> tuple[str, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        name = await asyncio.wait_for(reader.read(2), 5)
        return name.decode(), writer

    async def settle(self, condition, timeout: float = 5) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.01)


async def _close(writers):
    for w in writers:
        w.close()


# A stream where the system has no SOCK_SEQPACKET (macOS).
@pytest.mark.parametrize("kind", [None, socket.SOCK_STREAM])
async def test_connections_spread_evenly_and_refill_the_emptier_worker(kind):
    async with Pair(kind=kind) as p:
        for w in p.workers:
            w.start()
        clients = [await p.connect() for _ in range(32)]
        names = [n for n, _ in clients]
        assert names.count("w0") == names.count("w1") == 16

        # Ten of w0's connections close: the next ten all go to w0.
        closing = [w for n, w in clients if n == "w0"][:10]
        await _close(closing)
        await p.settle(lambda: p.workers[0].open == 6)
        more = [await p.connect() for _ in range(10)]
        assert [n for n, _ in more] == ["w0"] * 10
        await _close([w for n, w in clients if n == "w1"] +
                     [w for n, w in clients if n == "w0"][10:] + [w for _, w in more])


async def test_no_worker_ready_leaves_connections_queued_not_refused():
    async with Pair() as p:
        pending = asyncio.ensure_future(p.connect())
        await asyncio.sleep(0.3)
        assert not pending.done()            # accepted by the kernel, not by us yet
        p.workers[1].start()
        name, writer = await asyncio.wait_for(pending, 5)
        assert name == "w1"
        writer.close()


async def test_a_worker_gone_gets_no_more_connections():
    async with Pair() as p:
        for w in p.workers:
            w.start()
        p.workers[0].handed.stop()           # its process died: the channel closes
        clients = [await p.connect() for _ in range(6)]
        assert [n for n, _ in clients] == ["w1"] * 6
        assert p.balancer.channels[0] is None
        # Its replacement (a new channel) is counted from nothing and catches up.
        p.workers[0] = Worker("w0", p.balancer, 0)
        p.workers[0].start()
        await p.settle(lambda: p.balancer.ready[0])
        more = [await p.connect() for _ in range(6)]
        assert [n for n, _ in more] == ["w0"] * 6
        await _close([w for _, w in clients + more])


async def test_a_stuck_worker_gets_no_more_than_one_connection():
    async with Pair() as p:
        for w in p.workers:
            w.start()
        # w0's loop is stuck: whatever it was handed stays open, unanswered, so it
        # counts as busier than w1, whose connections come and go.
        asyncio.get_running_loop().remove_reader(p.workers[0].handed.channel.fileno())
        unanswered = []
        for k in range(1, 31):
            before = p.balancer.sent[0]
            reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
            await p.settle(lambda: sum(p.balancer.sent) == k)
            if p.balancer.sent[0] > before:
                unanswered.append(writer)
                continue
            assert await asyncio.wait_for(reader.read(2), 5) == b"w1"
            writer.close()
            await p.settle(lambda: p.workers[1].open == 0)
        assert len(unanswered) <= 1
        await _close(unanswered)


async def test_full_channels_overflow_to_the_next_worker_then_wait_in_the_queue():
    async with Pair() as p:
        for w in p.workers:
            w.start()
        # w0 stuck while w1 keeps its connections open: both look equally busy, so
        # descriptors pile up in w0's channel until its buffer is full; from then on
        # w1 takes them.
        loop = asyncio.get_running_loop()
        loop.remove_reader(p.workers[0].handed.channel.fileno())
        socks = []
        for k in range(1, 101):
            socks.append(socket.create_connection(("127.0.0.1", p.port)))
            await p.settle(lambda: sum(p.balancer.sent) == k)
        await p.settle(lambda: p.workers[1].open == 100 - p.balancer.sent[0])
        assert 10 < p.balancer.sent[0] < 60

        # Now w1 is stuck too: once its channel is full, one connection is held and
        # the rest wait in the kernel's queue; nothing is closed. When w0 reads again,
        # it is handed every one of them (w1's full channel is skipped) and serves them.
        loop.remove_reader(p.workers[1].handed.channel.fileno())
        socks += [socket.create_connection(("127.0.0.1", p.port)) for _ in range(80)]
        await p.settle(lambda: p.balancer.held is not None)
        assert not p.balancer.listening
        loop.add_reader(p.workers[0].handed.channel.fileno(), p.workers[0].handed._receive)
        await p.settle(lambda: sum(p.balancer.sent) == 180)
        await p.settle(lambda: p.workers[0].open == p.balancer.sent[0])
        assert p.balancer.held is None and p.balancer.listening
        for s in socks:
            s.close()


def _lowest_free_descriptor() -> int:
    fd = os.dup(0)      # the lowest number free is the one a new descriptor gets
    os.close(fd)
    return fd


async def test_an_accept_short_of_descriptors_pauses_and_loses_nothing(caplog):
    caplog.set_level(logging.WARNING, logger="media.balancer")
    async with Pair() as p:
        for w in p.workers:
            w.start()
        await p.settle(lambda: all(p.balancer.ready))
        client = socket.socket()
        client.setblocking(False)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # The soft limit at the lowest free number: no new descriptor can be made, so
        # the supervisor's accept fails (EMFILE) while the listener stays readable.
        resource.setrlimit(resource.RLIMIT_NOFILE, (_lowest_free_descriptor(), hard))
        try:
            client.connect_ex(("127.0.0.1", p.port))
            began = time.monotonic()
            await asyncio.sleep(0.5)
            failures = [r for r in caplog.records if "accept failed" in r.getMessage()]
            elapsed = time.monotonic() - began
            assert failures
            # Paused between attempts, not spinning on the readable listener (the
            # supervising loop here turns every 2 ms: about 250 attempts otherwise).
            assert len(failures) <= elapsed / ACCEPT_PAUSE + 2
            assert sum(p.balancer.sent) == 0
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        # The connection waited in the kernel's queue: handed and served once there
        # are descriptors again.
        await p.settle(lambda: sum(p.balancer.sent) == 1)
        # Read through the loop: the worker answering runs in this same loop, so a
        # blocking recv here would stop it from ever taking the connection it was sent.
        loop = asyncio.get_running_loop()
        assert await asyncio.wait_for(loop.sock_recv(client, 2), 5) in (b"w0", b"w1")
        client.close()
