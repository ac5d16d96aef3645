"""Two checkouts side by side in one run (issue 24: "the serving and upload figures
before and after ... no row of the performance table may get worse"). Never part of
the tests.

    python bench/bench_before_after.py --before /work/ref-before --after /work/ref-after
        [--rounds 3] [--seconds 5] [--connections 32] [--large-gets 3] [--json out.json]
        [--only small,304,large_get,upload,small_uploads,forwarded]

Each checkout's service (``python run.py`` from it, migrating its own fresh database
on the PostgreSQL at --pg, MEDIA_PROCESSING=false, every other setting its default)
runs for the whole run; the rounds alternate the two (the order swaps each round, so
neither always goes first) and the table gives medians, each side's spread over the
rounds and after/before per round. Rows:
  small GETs   wrk over 200 media of 50 KiB by their signed URLs, at random
  304s         the same URLs with If-None-Match
  large GET    --large-gets sequential full downloads of a 64 MiB media by curl
  upload       one 64 MiB streamed upload (new random bytes every round)
  small ups    200 uploads of 50 KiB (new random bytes each), 8 at a time
  forwarded    the round's 64 MiB bytes uploaded again to another message: the
               content-addressed store keeps one copy, the per-media one a second
and for each, the CPU spent per request, per MiB or per upload (ms) by the service's
processes and the PostgreSQL backends of its database: the work done, which the
machine's load shakes less than the throughput (the rows to read on a shared machine).
Both services, wrk, curl and PostgreSQL share this machine's cores: compare the
ratios, not the absolute figures.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_serving import free_port, lua_script, wait_ready  # noqa: E402
from bench.report import (MiB, Procs, api_upload, checkout_of, curl_downloads,  # noqa: E402
                          TreeCpu, etag_of, pdf_payload, run_wrk, service_upload, tree)
from bench.report_format import before_after_table, rotate  # noqa: E402

SMALL = 50 * 1024
SMALL_FILES = 200
SMALL_UPLOAD_CONCURRENCY = 8
WARM_UP_SECONDS = 1
SIDES = ("before", "after")


def small_payload() -> bytes:
    # Random bytes behind a JPEG signature: with processing off they are stored as
    # sent, and unique, so neither side can deduplicate them.
    return b"\xff\xd8\xff" + os.urandom(SMALL - 3)


class SideCpu(TreeCpu):
    """CPU seconds a side spends from now to .seconds(): its service's process tree and
    the PostgreSQL backends connected to its database (found by their title, so the
    other side's and other users' backends are left out). Less shaken by the load of
    a shared machine than throughput: the work, not how fast it got a core."""

    def __init__(self, pid: int, db: str) -> None:
        self.db = db
        super().__init__(pid)

    def _procs(self) -> list[psutil.Process]:
        backends = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if cmd.startswith("postgres: ") and f" {self.db} " in cmd:
                backends.append(p)
        return tree(self.pid) + backends


class Side:
    """One checkout's service, its database, key and messages."""

    def __init__(self, name: str, checkout: Path, admin_dsn: str, procs: Procs,
                 logs: Path) -> None:
        self.name, self.checkout, self.procs, self.logs = name, checkout, procs, logs
        self.db = f"bench_{name}_{os.getpid()}"
        self.dsn = admin_dsn.rsplit("/", 1)[0] + "/" + self.db
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIA_", "DB_"))}
        self.env = {**env, "DATABASE_URL": self.dsn, "MEDIA_PROCESSING": "false"}

    def cli(self, *args: str) -> str:
        return subprocess.run([sys.executable, "run.py", *args], cwd=self.checkout,
                              env=self.env, capture_output=True, text=True,
                              check=True).stdout.strip()

    def start(self) -> None:
        port = free_port()
        # `python run.py` serves after applying the checkout's migrations
        # (MEDIA_AUTO_MIGRATE defaults to true).
        self.proc = self.procs.start([sys.executable, "run.py"], self.logs / f"{self.name}.log",
                                     cwd=self.checkout, env={**self.env, "PORT": str(port)})
        self.base = f"http://127.0.0.1:{port}"
        wait_ready(self.base + "/readyz", self.proc, timeout=180)
        self.key = self.cli("keys", "create", "bench")
        self.message_id = int(self.cli("create-message"))
        self.forward_to = int(self.cli("create-message"))

    async def seed(self, small: list[bytes], big: list[bytes], big_size: int) -> None:
        sem = asyncio.Semaphore(SMALL_UPLOAD_CONCURRENCY)

        async def one(session, i: int) -> str:
            async with sem:
                meta = await api_upload(session, self.base, self.key, self.message_id,
                                        f"s{i}.jpg", small[i], "image/jpeg")
                return meta["url"]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as s:
            self.small_urls = await asyncio.gather(*(one(s, i) for i in range(len(small))))
        _, meta = await service_upload(self.base, self.message_id, big, self.key)
        self.big_url, self.big_size = meta["url"], big_size
        tmp = self.logs
        self.get_script = lua_script(tmp / f"{self.name}-get.lua",
                                     [(u, {}) for u in self.small_urls])
        self.rev_script = lua_script(
            tmp / f"{self.name}-304.lua",
            [(u, {"If-None-Match": etag_of(self.base + u)}) for u in self.small_urls])


async def small_uploads(side: Side, n: int) -> float:
    """n uploads of new 50 KiB files, SMALL_UPLOAD_CONCURRENCY at a time: uploads/s."""
    payloads = [small_payload() for _ in range(n)]
    sem = asyncio.Semaphore(SMALL_UPLOAD_CONCURRENCY)

    async def one(session, i: int) -> None:
        async with sem:
            await api_upload(session, side.base, side.key, side.message_id, f"u{i}.jpg",
                             payloads[i], "image/jpeg")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as s:
        t = time.perf_counter()
        await asyncio.gather(*(one(s, i) for i in range(n)))
        return n / (time.perf_counter() - t)


def large_gets(side: Side, n: int) -> float:
    """n sequential full downloads of the large media: MiB/s over their total time."""
    t = time.perf_counter()
    for _ in range(n):
        curl_downloads(side.base + side.big_url, 1, side.big_size)
    return n * side.big_size / MiB / (time.perf_counter() - t)


async def measure_round(side: Side, args, big: list[bytes], big_mib: int) -> dict:
    """One round of every row on one side; beside each figure, the CPU (service and
    its PostgreSQL backends) per request, per MiB or per upload, in ms."""
    out: dict = {}

    def meter() -> SideCpu:
        return SideCpu(side.proc.pid, side.db)
    for row, script in (("small", side.get_script), ("304", side.rev_script)):
        if row not in args.only:
            continue
        run_wrk(side.base, script, WARM_UP_SECONDS, args.connections, {})
        cpu, t = meter(), time.perf_counter()
        res = run_wrk(side.base, script, args.seconds, args.connections, {})
        cores = cpu.seconds() / (time.perf_counter() - t)
        if res["errors"]:
            raise RuntimeError(f"{side.name} {row}: {res['errors']} failed requests")
        out[f"{row}_rps"], out[f"{row}_p99"] = res["rps"], res["p99_ms"]
        out[f"{row}_cpu"] = 1000 * cores / res["rps"]
    if "large_get" in args.only:
        cpu = meter()
        out["large_get"] = await asyncio.to_thread(large_gets, side, args.large_gets)
        out["large_get_cpu"] = 1000 * cpu.seconds() / (args.large_gets * big_mib)
    for row, message_id in (("upload", side.message_id), ("forwarded", side.forward_to)):
        if row in args.only:
            cpu = meter()
            t, _ = await service_upload(side.base, message_id, big, side.key, f"{row}.pdf")
            out[row], out[f"{row}_cpu"] = big_mib / t, 1000 * cpu.seconds() / big_mib
        if row == "upload" and "small_uploads" in args.only:
            cpu = meter()
            out["small_uploads"] = await small_uploads(side, SMALL_FILES)
            out["small_uploads_cpu"] = 1000 * cpu.seconds() / SMALL_FILES
    return out


ROWS = (  # key, label, lower is better
    ("small_rps", "small GETs (50 KiB, 200 ids), req/s", False),
    ("small_p99", "small GETs p99, ms", True),
    ("304_rps", "304s (If-None-Match), req/s", False),
    ("304_p99", "304s p99, ms", True),
    ("large_get", "large GET ({big} MiB, sequential), MiB/s", False),
    ("upload", "upload of {big} MiB (new bytes), MiB/s", False),
    ("small_uploads", "small uploads (50 KiB, 8 at a time), uploads/s", False),
    ("forwarded", "forwarded upload (the same {big} MiB again), MiB/s", False),
    ("small_cpu", "CPU per small GET, ms", True),
    ("304_cpu", "CPU per 304, ms", True),
    ("large_get_cpu", "CPU per MiB downloaded, ms", True),
    ("upload_cpu", "CPU per MiB uploaded, ms", True),
    ("small_uploads_cpu", "CPU per small upload, ms", True),
    ("forwarded_cpu", "CPU per MiB forwarded, ms", True),
)


MEASURES = ("small", "304", "large_get", "upload", "small_uploads", "forwarded")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


async def run(args) -> dict:
    procs = Procs()
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-before-after-{os.getpid()}"
    logs.mkdir(parents=True)
    sides = {"before": Side("before", args.before, args.pg, procs, logs),
             "after": Side("after", args.after, args.pg, procs, logs)}
    report: dict = {"uptime_before": uptime(), "checkouts": {
        n: checkout_of(str(s.checkout)) for n, s in sides.items()}, "rounds": [],
        "big_mib": args.big_mib}
    admin = await asyncpg.connect(args.pg)
    try:
        for s in sides.values():
            await admin.execute(f'CREATE DATABASE "{s.db}"')
        for s in sides.values():
            s.start()
        big_mib = args.big_mib
        small = [small_payload() for _ in range(SMALL_FILES)]
        seed_big = pdf_payload(big_mib * MiB)
        for s in sides.values():
            await s.seed(small, seed_big, big_mib * MiB)
        del seed_big
        for r in range(args.rounds):
            # The same new bytes on both sides in a round; new ones every round, so
            # the upload rows never meet content already stored.
            big = pdf_payload(big_mib * MiB)
            res = {}
            for name in rotate(SIDES, r):
                res[name] = await measure_round(sides[name], args, big, big_mib)
                print(f"round {r + 1} {name:6} " + "  ".join(
                    f"{k} {v:.1f}" for k, v in res[name].items()), flush=True)
            report["rounds"].append(res)
    finally:
        procs.stop_all()
        for s in sides.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{s.db}" WITH (FORCE)')
        await admin.close()
    report["uptime_after"] = uptime()
    if args.keep:
        report["logs"] = str(logs)
    else:   # the services' access logs: tens of MiB a run
        shutil.rmtree(logs, ignore_errors=True)
    return report


def table(report: dict) -> str:
    rows = [(label.format(big=report["big_mib"]), [r["before"][k] for r in report["rounds"]],
             [r["after"][k] for r in report["rounds"]], lower)
            for k, label, lower in ROWS if k in report["rounds"][0]["before"]]
    return before_after_table(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="checkout of the code before")
    ap.add_argument("--after", type=Path, required=True, help="checkout of the code after")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres",
                    help="a PostgreSQL database to create and drop the two databases from")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5, help="per wrk run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--large-gets", type=int, default=3)
    ap.add_argument("--big-mib", type=int, default=64)
    ap.add_argument("--only", type=lambda t: set(t.split(",")), default=set(MEASURES),
                    help="a comma-separated subset of " + ",".join(MEASURES))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the services' logs")
    args = ap.parse_args()
    if args.only - set(MEASURES):
        ap.error(f"--only: unknown {', '.join(sorted(args.only - set(MEASURES)))}")
    for p in (args.before, args.after):
        if not (p / "run.py").is_file():
            ap.error(f"{p}: no run.py there")
    report = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(f"\nbefore: {report['checkouts']['before']}\nafter:  {report['checkouts']['after']}")
    print(f"uptime before: {report['uptime_before']}\nuptime after:  {report['uptime_after']}")
    print(f"{len(report['rounds'])} rounds, medians\n")
    print(table(report))


if __name__ == "__main__":
    main()
