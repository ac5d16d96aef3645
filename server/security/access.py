"""Scopes, the principal a request acts as, and the declaration of each route's access.

Routes are added with :func:`add`, which records next to the route what it needs. The
middleware looks the declaration up by (method, path template); a route added any other
way has none and then needs ``admin``: one someone forgot to declare is closed, not open.
"""
from __future__ import annotations

import dataclasses

from aiohttp import web

from server.security.signing import UrlSigner

# What a route needs. READ < WRITE < ADMIN are API-key scopes; OPEN needs nothing;
# ADDRESS is decided by the client's address (MEDIA_METRICS_ALLOW).
OPEN = "open"
ADDRESS = "address"
READ = "read"
WRITE = "write"
ADMIN = "admin"
KEY_SCOPES = (READ, WRITE, ADMIN)
# What asking for a WhatsApp send needs: the send route's scope, and also what an
# upload's send_to (multipart field, query, tus metadata) needs, since it sends alike.
SEND_SCOPE = WRITE
_RANK = {READ: 1, WRITE: 2, ADMIN: 3}


def covers(held: str, needed: str) -> bool:
    """Whether a key of scope ``held`` may call a route that needs ``needed``."""
    return _RANK.get(held, 0) >= _RANK.get(needed, 99)


@dataclasses.dataclass(frozen=True)
class Access:
    scope: str
    # Reading bytes with a valid ?exp=&sig= needs no key (serve routes).
    signed_url: bool = False
    # An upload token (Bearer or ?token=) may call it, for its own message only.
    upload_token: bool = False
    # Browsers may call it from MEDIA_CORS_ORIGINS (a preflight route is added).
    cors: bool = False


DENY_BY_DEFAULT = Access(ADMIN)


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a request acts as. ``kind``: key, token, signed-url, public (MEDIA_PUBLIC_READ),
    open (a route that needs nothing) or address (allowed by its address)."""
    name: str                      # key name, token:<message id>, signed-url, ...
    kind: str
    scope: str | None = None       # a key's scope
    message_id: int | None = None  # tokens: the only message they may upload to
    max_bytes: int | None = None   # tokens: the largest file they may upload
    expires: int | None = None     # signed URLs and tokens: unix seconds
    # Who exactly, where the name is shared: key:<id> (a name can be reused once its key
    # is revoked), token:<digest of the token> (every token for a message has the same
    # name). What a tus upload records as its creator.
    identity: str | None = None
    # The API key whose quota and upload rate this request counts against: the key
    # itself, or the key that issued the upload token (server/hygiene/quotas.py).
    key_id: int | None = None


PRINCIPAL = web.RequestKey("principal", Principal)
SIGNER = web.AppKey("signer", UrlSigner)
ROUTE_ACCESS = web.AppKey("route_access", dict)
CORS_PATHS = web.AppKey("cors_paths", dict)


def add(app: web.Application, method: str, path: str, handler, *, scope: str,
        signed_url: bool = False, upload_token: bool = False, cors: bool = False,
        **kwargs) -> web.AbstractRoute:
    """Add a route with the access it needs (``scope``: OPEN, ADDRESS, READ, WRITE or
    ADMIN). GET also answers HEAD, with the same access."""
    if scope not in (OPEN, ADDRESS, *KEY_SCOPES):
        raise ValueError(f"unknown scope {scope!r}")
    r = app.router
    route = (r.add_get(path, handler, **kwargs) if method == "GET"
             else r.add_route(method, path, handler, **kwargs))
    table = app.setdefault(ROUTE_ACCESS, {})
    canonical = route.resource.canonical if route.resource else path
    table[(method, canonical)] = Access(scope, signed_url, upload_token, cors)
    if cors:
        _add_preflight(app, method, path, canonical)
    return route


def _add_preflight(app: web.Application, method: str, path: str, canonical: str) -> None:
    from server.security.cors import preflight   # cors imports this module
    paths = app.setdefault(CORS_PATHS, {})
    if canonical not in paths:
        paths[canonical] = set()
        app.router.add_route("OPTIONS", path, preflight)
        app[ROUTE_ACCESS][("OPTIONS", canonical)] = Access(OPEN)
    paths[canonical].update({method, "HEAD"} if method == "GET" else {method})


def route_access(request: web.Request) -> Access | None:
    """What the matched route needs; None when no route matched (404/405 follow)."""
    resource = request.match_info.route.resource
    if resource is None:
        return None
    method = "GET" if request.method == "HEAD" else request.method
    return request.app.get(ROUTE_ACCESS, {}).get((method, resource.canonical),
                                                 DENY_BY_DEFAULT)
