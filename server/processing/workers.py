"""The processes that decode uploads, bounded in time and memory.

Decoding hostile bytes can cost a minute of CPU for a few hundred KB (a progressive
JPEG with thousands of scans) or most of a GiB (a 10000x10000 RGBA PNG), and a thread
cannot be stopped. So every decode runs in a child process that can be killed:

- ``size`` jobs at once (MEDIA_PROCESS_CONCURRENCY), in workers forked from
  multiprocessing's fork server, which is spawned clean (no event loop, no asyncpg)
  with the decoders already imported. Jobs are a function and its arguments (file
  paths, never file contents); results come back pickled.
- Time: a job still running at its limit is killed (SIGKILL) and its worker replaced;
  the caller gets 422 media_too_complex. A job whose caller is cancelled (the client
  went away) is killed the same way, so no work goes on for nobody. A job still
  running at a quarter of its time steps aside: its slot goes to the next job, so a
  bomb holds up other uploads for that quarter, not its whole time (at most
  ``size + 1`` such long jobs beside the ``size`` others).
- Memory: jobs declare an estimate made from the file's header before decoding, and
  run only while the estimates of all running jobs fit MEDIA_PROCESSING_MEMORY_BYTES
  (first come, first served; more than the whole budget is refused at once). Each
  worker may also grow by at most that budget (RLIMIT_DATA), so a header that lies
  makes its own decode fail, not the machine run out.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import dataclasses
import logging
import multiprocessing
import os
import resource
import signal
import traceback
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, Callable

from server.errors import MediaError, MediaTooComplex

log = logging.getLogger(__name__)

# Imported once in the fork server; every worker starts with them.
PRELOAD = ["server.processing.workers", "server.processing.costs",
           "server.processing.images", "server.processing.audio_video",
           "server.processing.documents", "server.processing.thumbnails"]
# Beyond the budget, what a worker may add for its own needs (pickled results, FFmpeg's
# thread stacks), so that a job estimated at the whole budget still fits.
WORKER_HEADROOM = 256 * 1024 * 1024
# A job that checks its own deadline (audio_video.py) gets this long past it to say so
# before it is killed.
GRACE_SECONDS = 1.0
# A job still running after this share of its time gives its slot to the next one; at
# most ``size + 1`` such long jobs run beside the ``size`` slots (with one slot, two
# bombs at once still leave room for a photo after two quarters).
LONG_SHARE = 0.25
_PR_SET_PDEATHSIG = 1


@dataclasses.dataclass(frozen=True)
class Work:
    """A function to run in a worker with its limits: ``seconds`` before it is killed,
    ``memory`` bytes reserved from the budget while it runs (its estimate)."""
    fn: Callable[..., Any]
    seconds: float
    memory: int = 0

    def __call__(self, *args):
        return self.fn(*args)


class MemoryBudget:
    """Bytes held by the jobs running at once; ``reserve(n)`` waits until ``n`` fits,
    in order of arrival (a large job is not overtaken for ever by small ones)."""

    def __init__(self, total: int):
        self.total = total
        self.used = 0
        self.peak = 0       # the most ever held at once
        self._waiters: collections.deque[tuple[int, asyncio.Future]] = collections.deque()

    @contextlib.asynccontextmanager
    async def reserve(self, n: int):
        if n > self.total:
            raise MediaTooComplex(
                f"decoding it would take about {n // 2**20} MiB, more than the "
                f"{self.total // 2**20} MiB allowed")
        await self._acquire(n)
        try:
            yield
        finally:
            self.used -= n
            self._wake()

    async def _acquire(self, n: int) -> None:
        if not self._waiters and self.used + n <= self.total:
            self._take(n)
            return
        fut = asyncio.get_running_loop().create_future()
        entry = (n, fut)
        self._waiters.append(entry)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():   # granted as it was cancelled
                self.used -= n
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)
            self._wake()
            raise

    def _wake(self) -> None:
        while self._waiters and self.used + self._waiters[0][0] <= self.total:
            n, fut = self._waiters.popleft()
            if not fut.done():
                self._take(n)
                fut.set_result(None)

    def _take(self, n: int) -> None:
        self.used += n
        self.peak = max(self.peak, self.used)


# -- the worker process ---------------------------------------------------------------

def _data_bytes() -> int:
    """This process's data segment (what RLIMIT_DATA counts) now, 0 if unknown."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def _harden(grow_bytes: int) -> None:
    # Ctrl-C reaches the whole process group: the server stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The fork server exits with the server process; take its workers along even
    # when the server was killed and could not stop them.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    limit = _data_bytes() + grow_bytes + WORKER_HEADROOM
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _serve(conn: Connection, grow_bytes: int) -> None:
    """A worker's loop: run each (work, args) received, send back the outcome."""
    _harden(grow_bytes)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        work, args = msg
        try:
            out = ("ok", work(*args))
        except MediaError as e:
            out = ("error", e)
        except MemoryError:
            out = ("error", MediaTooComplex("the file needs more memory than allowed"))
        except BaseException:
            out = ("bug", traceback.format_exc())
        try:
            conn.send(out)
        except MemoryError:
            conn.send(("error", MediaTooComplex("the result is larger than allowed")))
        except (OSError, ValueError):
            return


@dataclasses.dataclass(eq=False)
class _Worker:
    proc: Any
    conn: Connection
    answer: Future | None = None      # the thread waiting on conn, if any
    killed: bool = False

    def reap(self) -> None:
        """After kill: wait for the process to be gone and for the thread reading its
        connection to return, then free the descriptors."""
        self.proc.join()
        if self.answer is not None:
            futures.wait([self.answer])
        self.conn.close()
        with contextlib.suppress(ValueError):
            self.proc.close()


def _context():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)   # no effect once the fork server runs
    return ctx


# -- the pool -------------------------------------------------------------------------

class WorkerPool:
    """``await run(work, args)`` in one of ``size`` worker processes; ``close()`` kills
    them all (synchronous: it is also called outside an event loop's life)."""

    def __init__(self, size: int, memory_bytes: int):
        self.size = size
        self.budget = MemoryBudget(memory_bytes)
        self._slots = asyncio.Semaphore(size)
        self._long = 0          # jobs running past LONG_SHARE of their time, slot given up
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        # One thread per busy worker waits for its answer (a blocking recv: results of
        # many MiB must not be read on the event loop); killed workers' threads end
        # at their EOF.
        self._waiters = ThreadPoolExecutor(2 * size + 2, thread_name_prefix="media-wait")
        self._reaping: set[asyncio.Future] = set()    # and replacements starting
        self._closed = False

    async def start(self) -> None:
        """Start every worker now (the first one starts the fork server, ~1 s), so the
        first uploads don't wait for them."""
        workers = await asyncio.gather(*(self._spawn() for _ in range(self.size)))
        self._idle.extend(workers)

    def pids(self) -> list[int]:
        """The worker processes alive now."""
        return [w.proc.pid for w in list(self._all)]

    async def run(self, work: Work, args: tuple) -> Any:
        """``work(*args)`` in a worker, within ``work``'s time and memory."""
        async with self.budget.reserve(work.memory):
            await self._slots.acquire()
            lane = [True]       # holds a slot; emptied when it steps aside
            try:
                worker = self._idle.pop() if self._idle else await self._spawn()
                answered = False
                try:
                    kind, value = await self._call(worker, work, args, lane)
                    answered = True
                finally:
                    if not answered:      # over its time, cancelled, or dead
                        self._kill(worker)
                        self._replace()
                    else:
                        self._give_back(worker)
            finally:
                if lane:
                    self._slots.release()
                else:
                    self._long -= 1
        if kind == "ok":
            return value
        if kind == "error":
            raise value
        raise RuntimeError(f"media worker failed:\n{value}")

    async def _call(self, worker: _Worker, work: Work, args: tuple,
                    lane: list) -> tuple[str, Any]:
        worker.conn.send((work, args))     # paths and options: a few hundred bytes
        worker.answer = self._waiters.submit(worker.conn.recv)
        waiting = asyncio.wrap_future(worker.answer)
        waiting.add_done_callback(_seen)
        # asyncio.wait, not wait_for: the thread's future must stay uncancelled until
        # the thread returns (the connection is closed after it, never under it).
        limit = work.seconds + GRACE_SECONDS
        step_aside = work.seconds * LONG_SHARE
        done, _ = await asyncio.wait({waiting}, timeout=min(step_aside, limit))
        if not done and self._long < self.size + 1:
            # Long already: it gives its slot to the next file (a photo must not wait
            # out a bomb's whole time), and waits out its own beside it.
            self._long += 1
            lane.clear()
            self._slots.release()
            done, _ = await asyncio.wait({waiting}, timeout=limit - step_aside)
        elif not done:
            done, _ = await asyncio.wait({waiting}, timeout=limit - step_aside)
        if not done:
            raise MediaTooComplex(
                f"the file takes more than {work.seconds:.0f} s to process")
        try:
            return waiting.result()
        except (EOFError, OSError):
            # Killed from outside, or a decoder crashed, or it ran out of memory hard.
            raise MediaTooComplex("the file could not be processed within the limits") \
                from None

    def _give_back(self, worker: _Worker) -> None:
        # A replacement may have been started beside one a job had to start itself.
        if self._closed or len(self._all) > self.size:
            self._kill(worker)
        else:
            self._idle.append(worker)

    def _replace(self) -> None:
        """Start a worker in place of a killed one, in the background: a worker
        starting imports the program's main module again (multiprocessing does), which
        takes a while that no upload should wait for."""
        if self._closed:
            return
        task = asyncio.ensure_future(self._spawn())
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)
        task.add_done_callback(
            lambda t: None if t.cancelled() or t.exception() else self._give_back(t.result()))

    async def _spawn(self) -> _Worker:
        spawning = asyncio.ensure_future(asyncio.to_thread(self._start_worker))
        spawning.add_done_callback(self._adopt)    # first: before any awaiter resumes
        try:
            return await asyncio.shield(spawning)
        except asyncio.CancelledError:
            # The process starts anyway: keep it for the next job.
            spawning.add_done_callback(
                lambda f: None if f.cancelled() or f.exception()
                else self._give_back(f.result()))
            raise

    def _start_worker(self) -> _Worker:
        ctx = _context()
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, self.budget.total),
                           name="media-process", daemon=True)
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def _adopt(self, spawning: asyncio.Future) -> None:
        if spawning.cancelled() or spawning.exception() is not None:
            return
        worker = spawning.result()
        self._all.add(worker)
        if self._closed:
            self._kill(worker)

    def _kill(self, worker: _Worker) -> None:
        if worker.killed:
            return
        worker.killed = True
        self._all.discard(worker)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.kill(worker.proc.pid, signal.SIGKILL)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:     # no loop any more: reap it here
            worker.reap()
            return
        reaping = loop.run_in_executor(None, worker.reap)
        self._reaping.add(reaping)
        reaping.add_done_callback(self._reaping.discard)

    def close(self) -> None:
        """Kill every worker and wait until they are gone."""
        self._closed = True
        workers, self._all, self._idle = list(self._all), set(), []   # list(): atomic
        for w in workers:
            w.killed = True
            with contextlib.suppress(OSError, ValueError, AttributeError):
                os.kill(w.proc.pid, signal.SIGKILL)
        self._waiters.shutdown(wait=True)    # their recvs end at EOF
        for w in workers:
            w.reap()

    async def aclose(self) -> None:
        """close(), off the event loop, after the reaping of killed workers."""
        await asyncio.to_thread(self.close)
        while self._reaping:     # replacements that were starting are killed as they land
            await asyncio.gather(*self._reaping, return_exceptions=True)


def _seen(fut: asyncio.Future) -> None:
    # A killed worker's answer (EOF) is never looked at; say it was, to asyncio.
    if not fut.cancelled():
        fut.exception()
