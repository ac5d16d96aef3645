"""Serving benchmark: the service against aiohttp's FileResponse serving the same files
from a folder (the legacy way), side by side in one run. Never part of the test run.

    python bench/bench_serving.py [--rounds 3] [--seconds 8] [--connections 32]
        [--variant NAME:VAR=VALUE,VAR=VALUE ...] [--json report.json]

Scenarios (wrk, loopback only):
  small   GET of 50 KiB files, 200 different ids picked at random per request
  304     the same with If-None-Match: revalidation
  seek    a 1 KiB range near the end of a 64 MiB file
  thumb   GET of 320x240 thumbnails of 50 photos (1600x1200 JPEGs) by their signed URLs,
          beside FileResponse serving the same thumbnail bytes; the first request of
          each (which makes it) is timed once, apart, as "thumb made on request"
Each variant of the service (settings given as --variant) and the reference are
measured in alternation, rounds times, and the medians reported with their ratio to
the reference. wrk, the servers and PostgreSQL share this machine's cores: compare
ratios, not absolute figures.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SMALL = 50 * 1024
FILES = 200
BIG = 64 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url}: not ready")


def lua_script(path: Path, requests: list[tuple[str, dict[str, str]]]) -> Path:
    """A wrk script that sends one of ``requests`` (path, headers) at random."""
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace('"', '\\"')
    rows = ",\n".join(
        '{"%s", {%s}}' % (esc(p), ", ".join(f'["{esc(k)}"]="{esc(v)}"' for k, v in h.items()))
        for p, h in requests)
    path.write_text(f"""
local reqs = {{
{rows}
}}
math.randomseed(os.time())
request = function()
  local r = reqs[math.random(#reqs)]
  return wrk.format("GET", r[1], r[2])
end
""")
    return path


def wrk(base: str, script: Path, seconds: int, connections: int) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", str(script), base], capture_output=True, text=True,
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99"),
            "errors": int(non2xx.group(1)) if non2xx else 0}


def upload(base: str, message_id: int, data: bytes, name: str, key: str) -> dict:
    req = urllib.request.Request(
        f"{base}/api/media/upload-production?message_id={message_id}&filename={name}",
        data=data, method="POST", headers={"Content-Type": "application/octet-stream",
                                           "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


THUMB_PHOTOS = 50


def thumbnails(base: str, message_id: int, key: str, folder: Path
               ) -> tuple[list[tuple[str, str]], list[float]]:
    """Upload THUMB_PHOTOS real photos; make each one's 320x240 thumbnail by a first
    request (timed), and write its bytes to the reference's folder. Returns (signed
    URL, reference path) pairs and the first requests' times in ms."""
    import io
    from PIL import Image
    pairs, made = [], []
    for i in range(THUMB_PHOTOS):
        noise = Image.frombytes("RGB", (400, 300), os.urandom(400 * 300 * 3))
        buf = io.BytesIO()
        noise.resize((1600, 1200)).save(buf, "JPEG", quality=85)
        meta = upload(base, message_id, buf.getvalue(), f"p{i}.jpg", key)
        url = next(t["url"] for t in meta["thumbnails"] if t["width"] == 320)
        start = time.perf_counter()
        with urllib.request.urlopen(base + url, timeout=60) as r:
            data = r.read()
        made.append((time.perf_counter() - start) * 1000)
        (folder / f"t{i}.jpg").write_bytes(data)
        pairs.append((url, f"/files/t{i}.jpg"))
    return pairs, made


def etag_of(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        r.read()
        return r.headers["ETag"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--variant", action="append", default=[],
                   help="NAME:VAR=VALUE,... a service configuration to measure")
    ap.add_argument("--scenario", action="append", choices=["small", "304", "seek", "thumb"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    variants = [("default", {})] + [
        (v.partition(":")[0], dict(kv.split("=", 1) for kv in v.partition(":")[2].split(",")
                                   if kv)) for v in args.variant]
    scenarios = args.scenario or ["small", "304", "seek", "thumb"]

    from server.cli import embedded_pg
    from server.cli.migrate import apply_migrations
    tmp = Path(tempfile.mkdtemp(prefix="media-bench-", dir="/tmp"))
    pg = embedded_pg.start(tmp / "pgdata")
    procs: list[subprocess.Popen] = []
    try:
        dsn = pg.get_uri()
        apply_migrations(dsn)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIA_", "DB_"))}
        # The small files are random bytes behind a JPEG signature: stored unchecked, as
        # serving is what is measured (thumbnails are then all made on request).
        env.update(DATABASE_URL=dsn, LOG_LEVEL="INFO", MEDIA_PROCESSING="false")

        def start_service(settings: dict[str, str]) -> str:
            port = free_port()
            p = subprocess.Popen([sys.executable, "run.py", "serve", "--no-migrate"],
                                 cwd=ROOT, env={**env, **settings, "PORT": str(port)},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            wait_ready(f"http://127.0.0.1:{port}/readyz", p)
            return f"http://127.0.0.1:{port}"

        bases = {name: start_service(s) for name, s in variants}
        first = bases["default"]
        message_id = int(subprocess.run([sys.executable, "run.py", "create-message"],
                                        cwd=ROOT, env=env, capture_output=True, text=True,
                                        check=True).stdout)
        key = subprocess.run([sys.executable, "run.py", "keys", "create", "bench"], cwd=ROOT,
                             env=env, capture_output=True, text=True, check=True).stdout.strip()
        folder = tmp / "folder"
        folder.mkdir()
        small = []
        for i in range(FILES):
            data = b"\xff\xd8\xff" + os.urandom(SMALL - 3)
            meta = upload(first, message_id, data, f"s{i}.jpg", key)   # url: signed
            (folder / f"s{i}.jpg").write_bytes(data)
            small.append((meta["url"], f"/files/s{i}.jpg"))
        big = b"\x00\x00\x00\x1cftypmp42" + os.urandom(BIG - 12)
        big_url = upload(first, message_id, big, "big.mp4", key)["url"]
        (folder / "big.mp4").write_bytes(big)
        del big
        thumbs, made_ms = thumbnails(first, message_id, key, folder)

        ref_port = free_port()
        # As many processes as the service's default workers (issue 29: one against
        # two was how its ratios came about).
        from server.settings import default_workers
        ref = subprocess.Popen([sys.executable, str(ROOT / "bench" / "ref_folder_server.py"),
                                str(folder), str(ref_port), str(default_workers())],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(ref)
        ref_base = f"http://127.0.0.1:{ref_port}"
        wait_ready(f"{ref_base}/files/s0.jpg", ref)
        time.sleep(1)   # the other processes bind the port meanwhile

        end = BIG - 4096
        scripts = {}
        for name, base in [*bases.items(), ("FileResponse", ref_base)]:
            is_ref = name == "FileResponse"
            paths = [f for _, f in small] if is_ref else [u for u, _ in small]
            etags = [etag_of(base + p) for p in paths]
            seek_path = "/files/big.mp4" if is_ref else big_url
            scripts[name] = {
                "small": lua_script(tmp / f"{name}-small.lua", [(p, {}) for p in paths]),
                "304": lua_script(tmp / f"{name}-304.lua",
                                  [(p, {"If-None-Match": e}) for p, e in zip(paths, etags)]),
                "seek": lua_script(tmp / f"{name}-seek.lua",
                                   [(seek_path, {"Range": f"bytes={end}-{end + 1023}"})]),
                "thumb": lua_script(tmp / f"{name}-thumb.lua",
                                    [(f if is_ref else u, {}) for u, f in thumbs]),
            }
        results: dict = {}
        targets = [*bases.items(), ("FileResponse", ref_base)]
        for r in range(args.rounds):
            for scenario in scenarios:
                for name, base in targets:
                    res = wrk(base, scripts[name][scenario], args.seconds, args.connections)
                    results.setdefault(scenario, {}).setdefault(name, []).append(res)
                    print(f"round {r + 1} {scenario:5} {name:14} {res['rps']:9.0f} req/s  "
                          f"p50 {res['p50_ms']:.2f} ms  p99 {res['p99_ms']:.2f} ms"
                          + (f"  ERRORS {res['errors']}" if res["errors"] else ""),
                          flush=True)
        report = {"cpu": _cpu(), "cores": os.cpu_count(), "connections": args.connections,
                  "seconds": args.seconds, "rounds": args.rounds, "scenarios": {}}
        print(f"\n{'scenario':8} {'target':14} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'vs FileResponse small' if False else 'ratio':>8}")
        for scenario, by_target in results.items():
            ref_rps = statistics.median(x["rps"] for x in
                                        results.get("small", by_target)["FileResponse"]) \
                if scenario == "304" else statistics.median(
                    x["rps"] for x in by_target["FileResponse"])
            for name, runs in by_target.items():
                med = {k: statistics.median(x[k] for x in runs)
                       for k in ("rps", "p50_ms", "p99_ms")}
                med["ratio"] = med["rps"] / ref_rps
                report["scenarios"].setdefault(scenario, {})[name] = med
                print(f"{scenario:8} {name:14} {med['rps']:9.0f} {med['p50_ms']:8.2f} "
                      f"{med['p99_ms']:8.2f} {med['ratio']:8.2f}x")
        print("(ratio: req/s over FileResponse's in the same scenario; for 304, over "
              "FileResponse's full 200s of small files)")
        report["thumb_made_on_request_ms"] = statistics.median(made_ms)
        print(f"thumb made on request: median {statistics.median(made_ms):.1f} ms "
              f"(max {max(made_ms):.1f} ms) over {len(made_ms)} photos, one at a time")
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        embedded_pg.stop(pg)
        shutil.rmtree(tmp, ignore_errors=True)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
