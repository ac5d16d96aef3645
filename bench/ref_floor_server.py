"""The floor: a bare aiohttp app answering the folder's files from memory, with no
access log, no middleware and no checks: what aiohttp itself does on this machine,
which no service built on it can beat (issue 29).

    python bench/ref_floor_server.py FOLDER PORT [PROCESSES]

GET /files/NAME answers the file's bytes (read into memory at start, before the
processes fork, so they share them), a 304 when If-None-Match is its ETag, and a 206
for a ``Range: bytes=A-B`` (the seek scenario; the large file is mapped, not read).
"""
from __future__ import annotations

import hashlib
import mmap
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ref_processes import serve as serve_processes  # noqa: E402

LARGE = 8 * 1024 * 1024   # files above this are mapped rather than read
CACHE = "public, max-age=31536000"


def load(folder: Path) -> dict[str, tuple[bytes | mmap.mmap, str]]:
    """Every file of ``folder`` with an ETag (of its name and size, as cheap as it gets)."""
    files = {}
    for path in sorted(folder.iterdir()):
        size = path.stat().st_size
        if size > LARGE:
            with open(path, "rb") as f:
                body = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        else:
            body = path.read_bytes()
        tag = hashlib.sha1(f"{path.name}:{size}".encode()).hexdigest()[:16]
        files[path.name] = (body, f'"{tag}"')
    return files


def main() -> None:
    folder, port = Path(sys.argv[1]).resolve(), int(sys.argv[2])
    processes = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    files = load(folder)

    async def serve(request: web.Request) -> web.Response:
        item = files.get(request.match_info["name"])
        if item is None:
            raise web.HTTPNotFound()
        body, etag = item
        headers = {"ETag": etag, "Cache-Control": CACHE}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        rng = request.headers.get("Range", "")
        if rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            a, b = int(first), min(int(last), len(body) - 1)
            headers["Content-Range"] = f"bytes {a}-{b}/{len(body)}"
            return web.Response(status=206, body=body[a:b + 1], headers=headers)
        return web.Response(body=body, headers=headers, content_type="image/jpeg")

    def make_app() -> web.Application:
        app = web.Application()
        app.router.add_get("/files/{name}", serve)
        return app
    serve_processes(make_app, port, processes, access_log=None)


if __name__ == "__main__":
    main()
