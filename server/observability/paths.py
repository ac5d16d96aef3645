"""The path of a request as every log line may show it.

A path segment can be a credential: the Z-API webhook's ``{secret}`` is its only
authentication. Any request whose matched route has a ``{secret}`` is shown by its
route template (``/api/zapi/webhook/{secret}``) instead, in the access log and in the
error log alike; a query string (signatures, upload tokens) is never shown at all.
"""
from __future__ import annotations

from aiohttp import web

# Names of path variables whose values are credentials.
SECRET_PARTS = frozenset({"secret"})


def match_info(request: web.BaseRequest):
    """The request's match info, or None when it never reached the router."""
    try:
        return getattr(request, "match_info", None)
    except AssertionError:
        # A request aiohttp could not parse (its own 400) never reached the router.
        return None


def route_of(request: web.BaseRequest) -> str:
    """The matched route's template, or ``unmatched``."""
    info = match_info(request)
    resource = info.route.resource if info is not None and info.route else None
    return resource.canonical if resource is not None else "unmatched"


def safe_path(request: web.BaseRequest) -> str:
    """The path to log: still percent-encoded (one line), without the query string, and
    the route template instead when a path variable is a credential."""
    info = match_info(request)
    if info is not None and not SECRET_PARTS.isdisjoint(info):
        return route_of(request)
    return request.raw_path.partition("?")[0]
