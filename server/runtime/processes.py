"""Running the HTTP server: one process, or N worker processes sharing one port.

With ``--workers N`` (or MEDIA_WORKERS) this process becomes a supervisor: the database
(embedded or not) is started and migrated once, then N spawned processes each open
their own pool. This process listens on the port and hands each new connection to the
ready worker with the fewest open ones (balancer.py). A worker that dies is replaced;
SIGTERM or Ctrl-C stops them all (each finishing its requests within
MEDIA_SHUTDOWN_TIMEOUT_SECONDS), and only then is the embedded PostgreSQL stopped.

What is served comes from the command (server/cli/service.py), as a :class:`Service`:
the runtime imports nothing of the app, its handlers or the store.

Metrics: prometheus-client's multiprocess mode. Every worker writes its samples to
files in a folder made for this run, and /metrics on any worker sums them all, so a
scrape sees the whole instance whichever worker answers it.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler
from typing import TYPE_CHECKING, NamedTuple, Protocol

from server.runtime.balancer import Balancer, HandedConnections, listening_sockets
from server.secret import Secret
from server.settings import Settings

if TYPE_CHECKING:
    from aiohttp import web
    from aiohttp.abc import AbstractAccessLogger

log = logging.getLogger("media")

# A worker that dies sooner than this after starting is failing, not crashing now and
# then: replacing it in a loop would only hide the cause.
CRASH_LOOP_SECONDS = 5.0
PR_SET_PDEATHSIG = 1   # from linux/prctl.h


class Served(NamedTuple):
    """The app one serving process serves, built by the :class:`Service`."""
    app: web.Application
    # Called with 1 as each connection opens and -1 as it closes.
    count_connection: Callable[[int], None]


class Service(Protocol):
    """What to serve, handed over by the command. Spawned workers get it pickled, so it
    is an instance of a module-level class; its methods import what they need, so that
    the supervisor never loads the app."""

    def configure_logging(self, settings: Settings) -> None:
        """A spawned worker's logging, set up before anything else."""

    def load(self) -> type[AbstractAccessLogger]:
        """Import the app's modules (before what exists is frozen out of the garbage
        collector's sight); the access log's class."""

    def build(self, settings: Settings, dsn: str) -> Served:
        """The app, built in the process that serves it."""


def run_server(settings: Settings, dsn: str, service: Service, *,
               handed: HandedConnections | None = None) -> None:
    """Serve ``service`` in this process until SIGINT/SIGTERM: on the configured port,
    or the connections a supervisor hands over (``handed``)."""
    from server.runtime.memory import return_freed_memory
    from server.runtime.protocol import run_app
    access_log_class = service.load()
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # uvloop is optional (Windows)
        pass
    return_freed_memory()
    # What exists before serving (modules, classes, settings: about 70,000 objects)
    # lives as long as the process. Frozen out of the collector's sight, the full
    # collection the memory trimmer runs every 10 s walks only what came after: about
    # 1 ms on the event loop instead of 40 (a pause every slow request would feel).
    gc.collect()
    gc.freeze()
    app, count_open = service.build(settings, dsn)

    def count_connection(change: int) -> None:
        count_open(change)
        if change < 0 and handed is not None:
            handed.connection_closed()

    # aiohttp's run_app, with the service's own parser-error pages (runtime/protocol.py).
    run_app(app, host=settings.server.host, port=settings.server.port,
            handed=handed, count_connection=count_connection,
            shutdown_timeout=settings.server.shutdown_timeout,
            header_timeout=settings.server.header_timeout,
            access_log=logging.getLogger("media.access"),
            access_log_class=access_log_class,
            print=lambda msg: log.info(msg.strip()))


def _die_with(supervisor: int) -> None:
    """Have the kernel send this worker SIGTERM when the supervisor dies (Linux's
    PR_SET_PDEATHSIG). Without it a supervisor killed outright (SIGKILL, the OOM killer)
    leaves its workers serving on, orphaned: still holding the port, their pools and the
    old code, beside the workers of the next start."""
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl
    except (OSError, AttributeError, TypeError):
        return   # not Linux: a supervisor killed outright leaves its workers behind
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != supervisor:   # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(settings: Settings, dsn: str, service: Service, supervisor: int,
                 channel: socket.socket, closed, index: int) -> None:
    _die_with(supervisor)
    service.configure_logging(settings)
    try:
        run_server(settings, dsn, service,
                   handed=HandedConnections(channel, closed, index))
    except KeyboardInterrupt:
        pass


def _secret_to_worker(secret: Secret):
    return Secret, (secret.reveal(), str(secret))


def serve_workers(settings: Settings, dsn: str, count: int, service: Service) -> int:
    """Supervise ``count`` worker processes serving ``service`` until told to stop; the
    exit code. This process listens and hands each connection to a worker
    (balancer.py)."""
    # Bound here, so that a port held by something else fails in one line (main's
    # OSError handler), not in N workers' tracebacks.
    listeners = listening_sockets(settings.server.host, settings.server.port)
    # The workers get the settings as this process read them, pickled down the spawn
    # pipe. A Secret refuses pickling so that it never lands in a file or a cache; this
    # pipe, to a child of ours, is the one way it may take (multiprocessing's pickler
    # looks up this reducer before the class's own refusal).
    ForkingPickler.register(Secret, _secret_to_worker)
    metrics_dir = tempfile.mkdtemp(prefix="media-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir   # inherited by the workers
    ctx = multiprocessing.get_context("spawn")
    balancer = Balancer(listeners, ctx.RawArray("q", count), count)
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def start(i: int):
        channel = balancer.channel_for(i)
        p = ctx.Process(target=_worker_main, name=f"media-worker-{i}",
                        args=(settings, dsn, service, os.getpid(), channel, balancer.closed,
                              i))
        p.start()
        channel.close()     # the worker has its own copy
        return p, time.monotonic()

    workers = [start(i) for i in range(count)]
    log.info("serving on http://%s:%d with %d workers", settings.server.host,
             settings.server.port, count)
    code = 0
    try:
        while not stopping:
            balancer.wait(0.5, wake_on=[p.sentinel for p, _ in workers])
            for i, (p, started) in enumerate(workers):
                if p.is_alive() or stopping:
                    continue
                _mark_dead(p.pid)
                if time.monotonic() - started < CRASH_LOOP_SECONDS:
                    log.error("worker %d exited with %s right after starting; stopping",
                              i, p.exitcode)
                    stopping, code = True, 1
                    break
                log.warning("worker %d (pid %d) exited with %s; starting another",
                            i, p.pid, p.exitcode)
                workers[i] = start(i)
    finally:
        balancer.close()    # refuse new connections from here on
        for p, _ in workers:
            if p.is_alive():
                p.terminate()   # SIGTERM: each finishes its requests, then exits
        deadline = time.monotonic() + settings.server.shutdown_timeout + 10
        for p, _ in workers:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(5)
        for sig, handler in old.items():
            signal.signal(sig, handler)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return code


def _mark_dead(pid: int | None) -> None:
    if pid is None:
        return
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(pid)
