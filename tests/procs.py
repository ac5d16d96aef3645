"""Running run.py as a real process: start it on a free port, wait until it is ready,
read its memory from /proc, stop it, and find the postgres processes of a data folder.

Every process started through :class:`Processes` is killed by :meth:`Processes.cleanup`,
which the tests call from a fixture's ``finally``, so a failing test never leaves a
server (or an embedded PostgreSQL) behind.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.media import BYTES_KEPT_ENV

REPO = Path(__file__).resolve().parent.parent
RUN_PY = REPO / "run.py"

# Every variable load_settings reads: the server gets only what a test gives it, never
# what happens to be set in the shell running pytest.
SETTINGS_VARS = ("DATABASE_URL", "DATABASE_READ_URL", "HOST", "PORT", "MEDIA_DATA_DIR", "MEDIA_MAX_UPLOAD_BYTES",
                 "MEDIA_CHUNK_BYTES", "DB_POOL_MIN", "DB_POOL_MAX", "DB_POOL_ACQUIRE_TIMEOUT",
                 "MEDIA_AUTO_MIGRATE", "MEDIA_UPLOAD_STALE_SECONDS",
                 "MEDIA_TUS_EXPIRY_SECONDS", "MEDIA_TUS_LEASE_SECONDS",
                 "MEDIA_TUS_CHECKSUM_MAX_BYTES", "MEDIA_TUS_MAX_OPEN_PER_CLIENT",
                 "MEDIA_JANITOR_INTERVAL_SECONDS", "MEDIA_ORPHAN_GRACE_SECONDS", "MEDIA_READ_AHEAD_CHUNKS",
                 "MEDIA_UPLOAD_IDLE_TIMEOUT_SECONDS", "MEDIA_METADATA_CACHE_SECONDS",
                 "MEDIA_SHUTDOWN_TIMEOUT_SECONDS", "LOG_LEVEL", "LOG_FORMAT",
                 "ZAPI_BASE_URL", "ZAPI_INSTANCE_ID", "ZAPI_TOKEN", "ZAPI_CLIENT_TOKEN",
                 "ZAPI_WEBHOOK_SECRET", "ZAPI_MEDIA_MODE", "PUBLIC_BASE_URL",
                 "ZAPI_TIMEOUT_SECONDS", "ZAPI_MAX_ATTEMPTS", "ZAPI_RETRY_BASE_SECONDS",
                 "ZAPI_RETRY_UNKNOWN", "ZAPI_MAX_CONCURRENCY", "ZAPI_LEASE_SECONDS",
                 "MEDIA_IMPORT_ALLOW_HTTP", "MEDIA_IMPORT_HOSTS", "MEDIA_IMPORT_ALLOW_PRIVATE",
                 "MEDIA_IMPORT_CONNECT_TIMEOUT_SECONDS", "MEDIA_IMPORT_TIMEOUT_SECONDS",
                 "MEDIA_HEARTBEAT_SECONDS", "MEDIA_INSTANCE_DEAD_SECONDS", "MEDIA_WORKERS",
                 "MEDIA_RETENTION",
                 "MEDIA_CACHE_BYTES", "MEDIA_URL_TTL_SECONDS", "MEDIA_SIGNING_KEYS",
                 "MEDIA_PUBLIC_READ", "MEDIA_CORS_ORIGINS", "MEDIA_AUDIT_READS",
                 "MEDIA_AUDIT_RETENTION_DAYS",
                 "MEDIA_SCAN_CLAMD", "MEDIA_SCAN_TIMEOUT_SECONDS", "MEDIA_SCAN_FAIL",
                 "MEDIA_TRUSTED_PROXIES", "MEDIA_METRICS_ALLOW",
                 "MEDIA_SEND_TIMEOUT_SECONDS", "MEDIA_HEADER_TIMEOUT_SECONDS", "MEDIA_UPLOAD_MIN_RATE_BYTES_PER_SECOND",
                 "MEDIA_UPLOAD_RATE_WINDOW_SECONDS", "MEDIA_MAX_CONCURRENT_UPLOADS",
                 "DB_COMMAND_TIMEOUT_SECONDS", "DB_ADMIN_COMMAND_TIMEOUT_SECONDS",
                 "MEDIA_MAX_RANGE_CHUNKS", "MEDIA_PROCESSING",
                 "MEDIA_ALLOWED_TYPES", "MEDIA_MAX_IMAGE_BYTES", "MEDIA_MAX_VIDEO_BYTES",
                 "MEDIA_MAX_AUDIO_BYTES", "MEDIA_MAX_DOCUMENT_BYTES", "MEDIA_IMAGE_COMPRESS",
                 "MEDIA_IMAGE_QUALITY", "MEDIA_IMAGE_MAX_EDGE", "MEDIA_KEEP_IMAGE_METADATA",
                 "MEDIA_KEEP_VIDEO_METADATA",
                 "MEDIA_MAX_IMAGE_PIXELS", "MEDIA_PROCESS_CONCURRENCY",
                 "MEDIA_PROCESSING_TIMEOUT_SECONDS", "MEDIA_PROCESSING_MEMORY_BYTES",
                 "MEDIA_THUMBNAIL_SIZES", "MEDIA_THUMBNAIL_EAGER",
                 "MEDIA_THUMBNAIL_MAX_SOURCE_PIXELS", "MEDIA_THUMBNAIL_MAX_ANIMATED_BYTES",
                 "MEDIA_LEGACY_DIR", "MEDIA_LEGACY_SUNSET", "MEDIA_LEGACY_DEPRECATED_AT")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(overrides: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARS}
    # These tests send padded JPEGs and expect them back byte for byte: images are
    # validated but not rewritten unless a test says otherwise (as conftest's settings).
    env.update(BYTES_KEPT_ENV)
    # One server process, as the tests watch a process's memory, signals and logs; the
    # tests of workers ask for them (--workers or MEDIA_WORKERS).
    env["MEDIA_WORKERS"] = "1"
    env.update(overrides)
    return env


# How the server is started from the checkout; an installed copy passes its own
# command (the ``media-store`` console script) and folder.
CHECKOUT_COMMAND = (sys.executable, str(RUN_PY))


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60, *,
            command: tuple[str, ...] = CHECKOUT_COMMAND,
            cwd: Path = REPO) -> subprocess.CompletedProcess:
    """``python run.py ARGS`` (or ``command ARGS``) to completion; output as text."""
    return subprocess.run([*command, *args], cwd=cwd, env=clean_env(env),
                          capture_output=True, text=True, timeout=timeout)


def proc_status_kib(pid: int, field_name: str) -> int:
    """A ``VmXXX`` line of /proc/<pid>/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """postgres processes whose command line names a folder inside ``data_dir``."""
    root = str(Path(data_dir).resolve())
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if p.info["name"] == "postgres" and any(
                a == root or a.startswith(root + "/") for a in cmd):
            found.append(p)
    return found


def wait_no_postgres(data_dir: Path, timeout: float = 10) -> list[psutil.Process]:
    """Wait for the postgres of ``data_dir`` to be gone; return what is still there."""
    deadline = time.monotonic() + timeout
    while (left := [p for p in postgres_processes(data_dir) if _alive(p)]) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_postgres(data_dir: Path) -> None:
    """Fast shutdown (SIGINT) of a data folder's postmaster, SIGKILL if it lingers."""
    procs = postgres_processes(data_dir)
    for p in procs:
        try:
            p.send_signal(signal.SIGINT)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@dataclass
class Server:
    """One ``python run.py`` serving on ``port``; output goes to files, never a pipe that
    could fill up and block the server."""
    proc: subprocess.Popen
    port: int
    out_path: Path
    err_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def rss_kib(self) -> int:
        return proc_status_kib(self.pid, "VmRSS")

    def hwm_kib(self) -> int:
        return proc_status_kib(self.pid, "VmHWM")

    def get(self, path: str, timeout: float = 5) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"run.py exited with {self.proc.returncode} before "
                                     f"it was ready:\n{self.stderr()}")
            try:
                if self.get("/readyz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"run.py not ready after {timeout} s:\n{self.stderr()}")

    def signal_and_wait(self, sig: int, timeout: float = 30) -> int:
        """Send ``sig`` and wait for the exit; the exit code."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@dataclass
class Processes:
    """What a test started; :meth:`cleanup` ends all of it."""
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="media-proc-")))
    servers: list[Server] = field(default_factory=list)
    data_dirs: list[Path] = field(default_factory=list)

    def data_dir(self) -> Path:
        """A fresh folder for an embedded PostgreSQL (under /tmp, where pgserver's
        chmod of parent folders is harmless); its postgres is stopped at cleanup."""
        d = Path(tempfile.mkdtemp(prefix="media-pgdata-", dir="/tmp"))
        self.data_dirs.append(d)
        return d

    def start(self, env: dict[str, str], args: tuple[str, ...] = (), *,
              wait: bool = True, timeout: float = 60,
              command: tuple[str, ...] = CHECKOUT_COMMAND, cwd: Path = REPO) -> Server:
        """Start ``python run.py ARGS`` (or ``command ARGS``) with ``env`` on a free
        port; wait for /readyz."""
        port = free_port()
        n = len(self.servers)
        out_path, err_path = self.workdir / f"server{n}.out", self.workdir / f"server{n}.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [*command, *args], cwd=cwd,
                env=clean_env({"HOST": "127.0.0.1", "PORT": str(port), **env}),
                stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        srv = Server(proc, port, out_path, err_path)
        self.servers.append(srv)
        if wait:
            srv.wait_ready(timeout)
        return srv

    def cleanup(self) -> None:
        for srv in self.servers:
            if srv.proc.poll() is None:
                srv.proc.kill()
            try:
                srv.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        for d in self.data_dirs:
            stop_postgres(d)
            shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def all_descriptors():
    """This process's descriptor limit raised to its hard limit meanwhile (the servers
    it starts inherit it): for tests that open a thousand connections or more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def until(check, what: str, tries: int = 400):
    """Poll ``check()`` until true (a bounded number of tries, not a timing)."""
    for _ in range(tries):
        if check():
            return
        await asyncio.sleep(0.025)
    pytest.fail(f"never: {what}")
