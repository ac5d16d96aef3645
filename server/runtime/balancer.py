"""Connections spread evenly over the workers: the supervisor accepts each one and
hands it to the ready worker with the fewest open (SCM_RIGHTS over a socket pair).

Why not every worker listening on the port with SO_REUSEPORT: the kernel picks the
worker from a hash of the connection's addresses and ports, blind to load, so a few
dozen connections split unevenly (docs/performance.md); the busier worker answers
its share of requests proportionally later, and sets the p99. A proxy's pool of
kept-alive connections (nginx in front, a CDN) splits the same way, for hours.

Why not one listening socket shared by the workers: whichever worker's loop wakes
first accepts every connection waiting (libuv accepts until the queue is empty), so a
burst of new connections lands on one worker. Node's cluster module hands connections
over from its primary by default for the same reason.

The cost: one more process on the way of each new connection (an accept, a sendmsg),
not of its requests; kept-alive connections pay it once.
"""
from __future__ import annotations

import asyncio
import logging
import selectors
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from server.runtime.protocol import BACKLOG

log = logging.getLogger("media.balancer")

READY = b"r"       # a worker to the supervisor: "hand me connections now"
HANDED = b"c"      # the supervisor to a worker: one connection's descriptor rides along
ACCEPT_BATCH = 128   # accepts per wakeup, so that the channels get their turn
# The supervisor's send buffer on a channel: room for about 40 descriptors on their way
# to a worker. Past that (a worker whose loop is stuck) the next worker takes them.
CHANNEL_BUFFER = 16 * 1024
ACCEPT_PAUSE = 0.1   # seconds, after an accept failed for want of descriptors


def listening_sockets(host: str, port: int, backlog: int = BACKLOG) -> list[socket.socket]:
    """Bound, listening sockets for ``host``:``port``, as asyncio's create_server makes
    them (one per address the host resolves to). SO_REUSEPORT, so that a second
    instance can start on the port before this one has gone."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            s = socket.socket(family, kind, proto)
            sockets.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(address)
            s.listen(backlog)
            s.setblocking(False)
    except BaseException:
        for s in sockets:
            s.close()
        raise
    return sockets


def socket_pair(kind: int | None = None) -> tuple[socket.socket, socket.socket]:
    """A channel: a Unix socket pair that keeps each descriptor's message apart
    (SOCK_SEQPACKET) where the system has one (Linux); else a stream (macOS), where the
    receiver takes as many descriptors as bytes, one byte per descriptor sent."""
    if kind is not None:
        return socket.socketpair(socket.AF_UNIX, kind)
    try:
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError:
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def choose(open_counts: list[int | None], start: int) -> list[int]:
    """The workers to try, fewest open connections first; ``None``: not ready. Ties go
    round from ``start``, so equal workers take turns."""
    n = len(open_counts)
    order = [(start + k) % n for k in range(n)]
    return sorted((i for i in order if open_counts[i] is not None),
                  key=lambda i: open_counts[i])


class Balancer:
    """The supervisor's side. ``closed``: a shared array where worker i counts the
    connections it has closed (only it writes its slot); with what was handed to it,
    that gives its open connections without asking it."""

    def __init__(self, listeners: list[socket.socket], closed: Any, count: int,
                 kind: int | None = None):
        self.listeners = listeners
        self.kind = kind
        self.closed = closed
        self.sent = [0] * count
        self.channels: list[socket.socket | None] = [None] * count
        self.ready = [False] * count
        self.held: socket.socket | None = None    # accepted; every channel was full
        self.selector = selectors.DefaultSelector()
        self._turn = 0
        self.listening = False

    def channel_for(self, i: int) -> socket.socket:
        """A new channel to worker ``i`` (its end returned, to pass at spawn); any old one
        is dropped, and the worker counts from nothing."""
        self.drop(i)
        ours, theirs = socket_pair(self.kind)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHANNEL_BUFFER)
        ours.setblocking(False)
        self.channels[i] = ours
        self.sent[i] = self.closed[i]
        self.selector.register(ours, self._events(), ("channel", i))
        return theirs

    def drop(self, i: int) -> None:
        channel, self.channels[i], self.ready[i] = self.channels[i], None, False
        if channel is not None:
            self.selector.unregister(channel)
            channel.close()
        self._update()

    def wait(self, timeout: float, wake_on: Iterable[int] = ()) -> None:
        """Serve the listeners and channels for up to ``timeout`` seconds, or until one
        of the descriptors ``wake_on`` (the workers' sentinels) becomes readable."""
        wake_on = list(wake_on)
        for fd in wake_on:
            self.selector.register(fd, selectors.EVENT_READ, ("wake", None))
        try:
            for key, events in self.selector.select(timeout):
                kind, i = key.data
                if kind == "listener":
                    self._accept(key.fileobj)
                elif kind == "channel":
                    if events & selectors.EVENT_READ:
                        self._hear(i)
                    if events & selectors.EVENT_WRITE:
                        self._hand_held()
        finally:
            for fd in wake_on:
                self.selector.unregister(fd)

    def close(self) -> None:
        """Stop accepting (new connections are refused, not queued) and close the
        channels."""
        if self.held is not None:
            self.held.close()
            self.held = None
        for i in range(len(self.channels)):
            self.drop(i)
        for s in self.listeners:
            s.close()
        self.selector.close()

    def _hear(self, i: int) -> None:
        channel = self.channels[i]
        if channel is None:
            return
        try:
            data = channel.recv(16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:            # the worker is gone; its restart brings a new channel
            self.drop(i)
        elif READY in data and not self.ready[i]:
            self.ready[i] = True
            self._update()
            self._hand_held()

    def _events(self) -> int:
        # While a connection is held, the channels are watched for room as well.
        return selectors.EVENT_READ | (selectors.EVENT_WRITE if self.held is not None else 0)

    def _update(self) -> None:
        """Listen while some worker is ready and nothing is held: otherwise connections
        wait in the kernel's queue (as they would for a busy single process), not in
        ours."""
        want = any(self.ready) and self.held is None
        if want != self.listening:
            for s in self.listeners:
                if want:
                    self.selector.register(s, selectors.EVENT_READ, ("listener", None))
                else:
                    self.selector.unregister(s)
            self.listening = want
        for i, channel in enumerate(self.channels):
            if channel is not None and self.selector.get_key(channel).events != \
                    self._events():
                self.selector.modify(channel, self._events(), ("channel", i))

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:   # reset by the client while queued
                continue
            except OSError as e:
                # Out of descriptors or memory: the listener stays readable, so pause
                # rather than spin; the connections wait in the kernel's queue.
                log.warning("accept failed: %s", e)
                time.sleep(ACCEPT_PAUSE)
                return
            if not self._hand(conn):
                self.held = conn
                self._update()
                return

    def _hand_held(self) -> None:
        if self.held is not None and self._hand(self.held):
            self.held = None
            self._update()

    def _hand(self, conn: socket.socket) -> bool:
        """Hand ``conn`` to the ready worker with the fewest open connections whose
        channel has room; False if none has. Handed, our copy is closed."""
        counts = [self.sent[i] - self.closed[i] if self.ready[i] else None
                  for i in range(len(self.channels))]
        for i in choose(counts, self._turn):
            try:
                socket.send_fds(self.channels[i], [HANDED], [conn.fileno()])
            except (BlockingIOError, InterruptedError):
                continue         # its channel is full (busy or stuck): the next one
            except OSError:
                self.drop(i)     # gone
                continue
            self.sent[i] += 1
            self._turn = (i + 1) % len(self.channels)
            conn.close()
            return True
        return False


class HandedConnections:
    """The worker's side: connections handed over by the supervisor are served by
    ``protocol_factory`` like ones the worker accepted itself."""

    def __init__(self, channel: socket.socket, closed: Any, index: int):
        self.channel = channel
        self.closed = closed
        self.index = index
        self._factory: Callable[[], asyncio.Protocol] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, protocol_factory: Callable[[], asyncio.Protocol]) -> None:
        self._factory = protocol_factory
        self._loop = asyncio.get_running_loop()
        self.channel.setblocking(False)
        self._loop.add_reader(self.channel.fileno(), self._receive)
        self.channel.send(READY)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.channel.fileno())
            self._loop = None
        self.channel.close()

    def connection_closed(self) -> None:
        self.closed[self.index] += 1

    def _receive(self) -> None:
        while self._loop is not None:
            try:
                data, fds, _, _ = socket.recv_fds(self.channel, 64, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            if not data and not fds:     # the supervisor is gone
                self.stop()
                return
            for fd in fds:
                sock = socket.socket(fileno=fd)
                task = self._loop.create_task(
                    self._loop.connect_accepted_socket(self._factory, sock))
                task.add_done_callback(lambda t, s=sock: self._started(t, s))

    def _started(self, task: asyncio.Task, sock: socket.socket) -> None:
        if task.cancelled() or task.exception() is not None:
            sock.close()
            self.connection_closed()
