"""CORS for the routes browsers call from other origins (serving, uploads with a token).

Origins come from MEDIA_CORS_ORIGINS (none by default: no CORS at all). Requests
carry ``Authorization`` and conditional/Range headers, so those are allowed; a web
player needs to read Content-Range, ETag, Content-Length and Accept-Ranges, so those
are exposed. No cookies are involved: ``Access-Control-Allow-Credentials`` is never sent.
"""
from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from server.errors import CorsRefused
from server.security.access import CORS_PATHS, route_access
from server.settings import SETTINGS

ALLOW_HEADERS = ("Authorization, Range, If-Match, If-None-Match, If-Modified-Since, "
                 "If-Unmodified-Since, If-Range, Content-Type, Content-Disposition, "
                 "X-Message-Id, X-File-Name, X-Request-Id, "
                 # tus (server/tus)
                 "Tus-Resumable, Upload-Length, Upload-Offset, Upload-Metadata, "
                 "Upload-Defer-Length, Upload-Checksum, X-HTTP-Method-Override")
EXPOSE_HEADERS = ("Content-Range, Content-Length, ETag, Accept-Ranges, X-Request-Id, "
                  # tus (server/tus): a browser client must read these to resume
                  "Location, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, "
                  "Tus-Checksum-Algorithm, Upload-Offset, Upload-Length, Upload-Metadata, "
                  "Upload-Defer-Length, Upload-Expires, Media-Id, Media-Url, Delivery-Id, "
                  "Retry-After")
MAX_AGE = "600"


def allowed_origin(origin: str | None, allowed: Sequence[str]) -> str | None:
    """The Access-Control-Allow-Origin value for ``origin``, or None (not allowed)."""
    if not origin or not allowed:
        return None
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None


def preflight_headers(origin: str | None, method: str | None, allowed: Sequence[str],
                      methods: set[str]) -> dict[str, str] | None:
    """The answer to a preflight, or None to refuse it (origin or method not allowed)."""
    value = allowed_origin(origin, allowed)
    if value is None or method is None or method.upper() not in methods:
        return None
    headers = {"Access-Control-Allow-Origin": value,
               "Access-Control-Allow-Methods": ", ".join(sorted(methods)),
               "Access-Control-Allow-Headers": ALLOW_HEADERS,
               "Access-Control-Max-Age": MAX_AGE}
    if value != "*":
        headers["Vary"] = "Origin"
    return headers


async def preflight(request: web.Request) -> web.Response:
    """OPTIONS on a CORS route: 204 with what may be sent, or 403."""
    resource = request.match_info.route.resource
    methods = request.app[CORS_PATHS].get(resource.canonical if resource else "", set())
    headers = preflight_headers(request.headers.get("Origin"),
                                request.headers.get("Access-Control-Request-Method"),
                                request.app[SETTINGS].security.cors_origins, methods)
    if headers is None:
        raise CorsRefused()
    return web.Response(status=204, headers=headers)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the actual response (200, 206, 304, errors) of a CORS route
    tells the browser it may be read."""
    if request.method == "OPTIONS":
        return
    access = route_access(request)
    allowed = request.app[SETTINGS].security.cors_origins
    if access is None or not access.cors or not allowed:
        return
    value = allowed_origin(request.headers.get("Origin"), allowed)
    if value != "*":
        # The answer depends on Origin: a cache in front must keep one per origin.
        response.headers.add("Vary", "Origin")
    if value is not None:
        response.headers["Access-Control-Allow-Origin"] = value
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
