"""Benchmark: what media processing costs per upload, and the server's peak memory.

    python bench/bench_processing.py [--repeat 3] [--database-url URL]

Uploads a 12-megapixel JPEG, a 30 s 720p MP4 and a 30 s voice note (Opus in Ogg),
each ``--repeat`` times, to the real server (run.py, a separate process on loopback)
with processing on (the defaults) and off (MEDIA_PROCESSING=false), alternating the
two servers so machine noise hits both alike. Prints the median time per upload and
each server's peak RSS (VmHWM) above its idle RSS. Never part of the test run.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_media import ROOT, free_port, wait_ready  # noqa: E402


def twelve_mp_jpeg() -> bytes:
    from PIL import Image, ImageFilter
    w, h = 4000, 3000
    # Smoothed noise: photo-like detail, so the JPEG weighs what a phone's does.
    small = Image.frombytes("RGB", (w // 8, h // 8), os.urandom(w * h * 3 // 64))
    img = small.resize((w, h), Image.Resampling.BICUBIC).filter(ImageFilter.DETAIL)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def mp4_720p(seconds: int = 30, fps: int = 30) -> bytes:
    import av
    from PIL import Image
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        v = c.add_stream("libx264", rate=fps, options={"preset": "veryfast"})
        v.width, v.height, v.pix_fmt, v.bit_rate = 1280, 720, "yuv420p", 2_500_000
        a = c.add_stream("aac", rate=48000, layout="stereo")
        base = Image.frombytes("RGB", (160, 90), os.urandom(160 * 90 * 3)).resize((1280, 720))
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_image(base.rotate(i % 360))
            frame.pts = i
            c.mux(v.encode(frame))
        c.mux(v.encode())
        _tone_into(c, a, seconds, 48000, "stereo")
    return buf.getvalue()


def voice_note(seconds: int = 30) -> bytes:
    import av
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as c:
        a = c.add_stream("libopus", rate=48000, layout="mono")
        a.bit_rate = 24_000
        _tone_into(c, a, seconds, 48000, "mono")
    return buf.getvalue()


def _tone_into(c, stream, seconds: int, rate: int, layout: str) -> None:
    import array
    import math

    import av
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout,
                                  rate=rate)
    step = 1024
    for start in range(0, seconds * rate, step):
        pcm = array.array("h", (int(8000 * math.sin(i / 7.0)) for i in range(start, start + step)))
        frame = av.AudioFrame(format="s16", layout="mono", samples=step)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate, frame.pts = rate, start
        for r in resampler.resample(frame):
            c.mux(stream.encode(r))
    c.mux(stream.encode())


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class Server:
    def __init__(self, tmp: Path, database_url: str | None, extra: dict[str, str]):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PORT=str(self.port), MEDIA_DATA_DIR=str(tmp),
                   LOG_LEVEL="WARNING", **extra)
        if database_url:
            env["DATABASE_URL"] = database_url
        self.env = env
        self.message = subprocess.run(
            [sys.executable, "run.py", "create-message"], cwd=ROOT, env=env,
            capture_output=True, text=True, check=True).stdout.strip()
        self.proc = subprocess.Popen([sys.executable, "run.py"], cwd=ROOT, env=env)

    async def ready(self) -> None:
        await wait_ready(self.base, self.proc)
        self.idle_kib = kib(self.proc.pid, "VmRSS")

    async def upload(self, s: aiohttp.ClientSession, data: bytes, name: str) -> float:
        t = time.perf_counter()
        async with s.post(f"{self.base}/api/media/upload-production?message_id="
                          f"{self.message}&filename={name}", data=data,
                          headers={"Content-Type": "application/octet-stream"}) as r:
            body = await r.text()
            if r.status != 201:
                raise RuntimeError(f"{name}: {r.status} {body}")
        return time.perf_counter() - t

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def run(args) -> None:
    print("generating samples ...", flush=True)
    samples = {"12 MP JPEG": (twelve_mp_jpeg(), "photo.jpg"),
               "30 s 720p MP4": (mp4_720p(), "clip.mp4"),
               "30 s voice note": (voice_note(), "voice.ogg")}
    for label, (data, _) in samples.items():
        print(f"  {label}: {len(data) / 1e6:.1f} MB")
    tmp = Path(tempfile.mkdtemp(prefix="media-bench-proc-"))
    servers = {}
    try:
        for mode, extra in (("on", {}), ("off", {"MEDIA_PROCESSING": "false"})):
            folder = tmp / mode
            folder.mkdir()
            servers[mode] = Server(folder, args.database_url, extra)
        for srv in servers.values():
            await srv.ready()
        times: dict[tuple[str, str], list[float]] = {}
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(timeout=timeout) as s:
            for _ in range(args.repeat):
                for label, (data, name) in samples.items():
                    for mode, srv in servers.items():
                        times.setdefault((label, mode), []).append(
                            await srv.upload(s, data, name))
        for label in samples:
            on = statistics.median(times[(label, "on")])
            off = statistics.median(times[(label, "off")])
            print(f"{label}: processing on {on * 1000:.0f} ms, off {off * 1000:.0f} ms "
                  f"per upload (median of {args.repeat}; on/off = {on / off:.1f})")
        for mode, srv in servers.items():
            peak = kib(srv.proc.pid, "VmHWM")
            print(f"server with processing {mode}: idle RSS {srv.idle_kib / 1024:.0f} MiB, "
                  f"peak {peak / 1024:.0f} MiB (+{(peak - srv.idle_kib) / 1024:.0f} MiB)")
    finally:
        for srv in servers.values():
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--database-url")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
