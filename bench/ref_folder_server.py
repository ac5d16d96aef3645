"""The reference the service must beat: aiohttp's FileResponse serving a folder, which
is how the legacy /uploads/media folder would be served. Used by bench_serving.py.

    python bench/ref_folder_server.py FOLDER PORT
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from aiohttp import web


def main() -> None:
    folder, port = Path(sys.argv[1]).resolve(), int(sys.argv[2])

    async def serve(request: web.Request) -> web.StreamResponse:
        path = (folder / request.match_info["name"]).resolve()
        if path.parent != folder or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "public, max-age=31536000"})

    app = web.Application()
    app.router.add_get("/files/{name}", serve)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)   # access log on, as shipped
    web.run_app(app, host="127.0.0.1", port=port, print=None,
                access_log=logging.getLogger("ref.access"))


if __name__ == "__main__":
    main()
