"""A burst of connections while the server can't accept (its loop busy, or stopped)
waits in the kernel's queue rather than having its SYNs dropped: with aiohttp's default
backlog of 128 every connection past the 129th waits a second or more for its SYN to be
retried. Tested against a real server process, stopped with SIGSTOP so that nothing is
accepted during the burst, in one process and with --workers (where the supervisor
listens)."""
from __future__ import annotations

import selectors
import signal
import socket
import time
from pathlib import Path

import psutil
import pytest

from server.runtime.protocol import BACKLOG
from tests.procs import all_descriptors

pytestmark = pytest.mark.slow

BURST = 1000


def _kernel_cap() -> int:
    """net.core.somaxconn: the kernel caps every listen backlog at it."""
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return BACKLOG


def _burst(port: int, count: int) -> tuple[list[socket.socket], int]:
    """Start ``count`` connections at once and give them 0.5 s to connect (less than
    the 1 s a dropped SYN waits before it is sent again); (the sockets, how many
    connected)."""
    socks = []
    with selectors.DefaultSelector() as sel:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            socks.append(s)
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_WRITE)
        connected, deadline = 0, time.monotonic() + 0.5
        while sel.get_map() and time.monotonic() < deadline:
            for key, _ in sel.select(deadline - time.monotonic()):
                sel.unregister(key.fileobj)
                if key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    connected += 1
    return socks, connected


@pytest.mark.parametrize("args", [(), ("serve", "--workers", "2")],
                         ids=["one process", "workers"])
def test_a_burst_of_connections_waits_in_the_queue_while_nothing_is_accepted(
        procs, db_dsn, args):
    burst = min(BURST, BACKLOG, _kernel_cap())
    if burst <= 128:
        pytest.skip(f"this kernel caps every listen backlog at {burst} (somaxconn)")
    srv = procs.start({"DATABASE_URL": db_dsn}, args)
    stopped = [srv.proc.pid] + [c.pid for c in psutil.Process(srv.pid).children()
                                if "postgres" not in c.name()]
    with all_descriptors():
        for pid in stopped:
            psutil.Process(pid).send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            socks, connected = _burst(srv.port, burst)
            took = time.monotonic() - t0
        finally:
            for pid in stopped:
                psutil.Process(pid).send_signal(signal.SIGCONT)
        try:
            assert connected == burst, f"{connected} of {burst} connected in {took:.1f} s"
            # Once the server runs again it serves as before.
            assert srv.get("/healthz")[0] == 200
        finally:
            for s in socks:
                s.close()
