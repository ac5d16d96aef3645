"""How the bench's own reference servers (ref_folder_server.py, ref_floor_server.py)
run at a given number of processes, so that they are compared with the service at the
same count (issue 29).

One process: the app in this process, as the service runs with one worker. Several:
this process forks that many children, each running the app on the same port with
SO_REUSEPORT (aiohttp's ``reuse_port``), and waits for them; SIGTERM or SIGINT is passed
on to every child. The kernel picks a child by a hash of each connection's addresses,
blind to load, so a few dozen connections may split unevenly (the service's supervisor
balances them instead, server/runtime/balancer.py): if anything that costs the
references, not the service. Data loaded before ``serve`` is shared by the children
(copy on write).
"""
from __future__ import annotations

import os
import signal
from collections.abc import Callable

from aiohttp import web


def serve(make_app: Callable[[], web.Application], port: int, processes: int,
          **run_app: object) -> None:
    """Serve ``make_app()`` on 127.0.0.1:``port`` in ``processes`` processes (uvloop
    when installed, as the service runs)."""
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    if processes <= 1:
        web.run_app(make_app(), host="127.0.0.1", port=port, print=None, **run_app)
        return
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                web.run_app(make_app(), host="127.0.0.1", port=port, reuse_port=True,
                            print=None, **run_app)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        children.append(pid)

    def stop(signum, _frame) -> None:
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for pid in children:
        os.waitpid(pid, 0)
