"""The reference the service must beat: aiohttp's FileResponse serving a folder, which
is how the legacy /uploads/media folder would be served. Used by bench_serving.py and
bench/report.py.

    python bench/ref_folder_server.py FOLDER PORT [PROCESSES]

PROCESSES (default 1): how many processes serve the port (bench/ref_processes.py), so
that it runs at the service's own count.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ref_processes import serve as serve_processes  # noqa: E402


def main() -> None:
    folder, port = Path(sys.argv[1]).resolve(), int(sys.argv[2])
    processes = int(sys.argv[3]) if len(sys.argv) > 3 else 1

    async def serve(request: web.Request) -> web.StreamResponse:
        path = (folder / request.match_info["name"]).resolve()
        if path.parent != folder or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "public, max-age=31536000"})

    def make_app() -> web.Application:
        app = web.Application()
        app.router.add_get("/files/{name}", serve)
        return app
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)   # access log on, as shipped
    serve_processes(make_app, port, processes, access_log=logging.getLogger("ref.access"))


if __name__ == "__main__":
    main()
