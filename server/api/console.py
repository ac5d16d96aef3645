"""GET /console: the operators' page, plain files from server/console/ (no build step).

The page holds no data, so it is open; everything it shows comes from the API with the
key the operator typed (docs/console.md). Its responses carry a strict
Content-Security-Policy: only this origin's scripts and styles (no inline script or
style), media and frames from this origin (the signed serving URLs), nothing embedding
the page.
"""
from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web


FOLDER = Path(__file__).resolve().parent.parent / "console"
CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
       "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
          ".svg": "image/svg+xml"}
# Flat names only: no path can leave the folder.
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\.(html|js|css|svg)")


def headers() -> dict[str, str]:
    """What every console response carries."""
    return {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
            # Revalidated each time: a new release's page and modules arrive together.
            "Cache-Control": "no-cache"}


def _file(name: str) -> web.FileResponse:
    path = FOLDER / name
    if not _NAME.fullmatch(name) or not path.is_file():
        raise web.HTTPNotFound()   # the error middleware: 404 not_found
    response = web.FileResponse(path, headers=headers())
    response.content_type = _TYPES[path.suffix]
    if path.suffix in (".html", ".js", ".css"):
        response.charset = "utf-8"
    return response


async def console_page(request: web.Request) -> web.StreamResponse:
    """GET /console: the page."""
    return _file("index.html")


async def console_asset(request: web.Request) -> web.StreamResponse:
    """GET /console/{name}: its modules, style sheet and icons."""
    return _file(request.match_info["name"])
