"""The tus routes and the janitor's hook. Every route needs a write key or an upload
token (for the upload's message) and is open to CORS; OPTIONS is open (tus clients
ask it before anything) and doubles as the CORS preflight."""
from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.security import OPEN, WRITE, add
from server.security.access import CORS_PATHS, ROUTE_ACCESS, Access
from server.tus import handler
from server.tus.store import TusStore

BASE = handler.BASE
UPLOAD = BASE + "{uploadId}"


def setup_routes(app: web.Application) -> None:
    for path in (BASE, UPLOAD):
        # tus's own OPTIONS first, so add(cors=True) below keeps it as the preflight.
        route = app.router.add_route("OPTIONS", path, handler.options)
        canonical = route.resource.canonical
        app.setdefault(ROUTE_ACCESS, {})[("OPTIONS", canonical)] = Access(OPEN)
        app.setdefault(CORS_PATHS, {}).setdefault(canonical, set())
    opts = {"scope": WRITE, "upload_token": True, "cors": True}
    add(app, "POST", BASE, handler.create, **opts)
    head = add(app, "HEAD", UPLOAD, handler.head, **opts)
    # The middleware looks HEAD up as GET (GET routes answer HEAD); there is no GET here.
    table = app[ROUTE_ACCESS]
    table[("GET", head.resource.canonical)] = table[("HEAD", head.resource.canonical)]
    add(app, "PATCH", UPLOAD, handler.patch, **opts)
    add(app, "DELETE", UPLOAD, handler.delete, **opts)
    add(app, "POST", UPLOAD, handler.override, **opts)
    app.on_response_prepare.append(_tus_resumable)
    app[handler.RECEIVING] = set()
    app.on_shutdown.append(handler.stop_receiving)


async def _tus_resumable(request: web.Request, response: web.StreamResponse) -> None:
    """Tus-Resumable on every tus answer but OPTIONS, the refusals of the access
    middleware (401, 403) included: they come before the handlers' own wrapper."""
    # raw_path: every response of the service passes here, and the decoded path costs.
    if request.raw_path.startswith(BASE) and request.method != "OPTIONS" \
            and "Tus-Resumable" not in response.headers:
        response.headers["Tus-Resumable"] = handler.h.VERSION


async def reclaim_expired_tus(app: web.Application) -> int:
    """The janitor's part for tus: expired uploads go; how many."""
    return await TusStore(app[appkeys.STORE]).reclaim_expired()
