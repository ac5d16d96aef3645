"""GET /api/stats: the store's figures as JSON, for the console's dashboard.

The same figures as ``media-store stats --json`` (server/legacy/stats.py computes both),
without the legacy folder's left-over count (the server does not list that folder per
request), plus the growth per day (sql/monitoring/growth.sql) for a chart.
"""
from __future__ import annotations

from aiohttp import web

from server.errors import BadRequest
from server.legacy.stats import collect, growth
from server.store.media import STORE

DEFAULT_DAYS, MAX_DAYS = 30, 366


def parse_days(text: str | None) -> int:
    """``?days=``: 1..MAX_DAYS, DEFAULT_DAYS when absent; anything else is a 400."""
    if text is None:
        return DEFAULT_DAYS
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise BadRequest(f"days must be an integer between 1 and {MAX_DAYS}")
    return int(text)


async def get_stats(request: web.Request) -> web.Response:
    """GET /api/stats?days=: stats plus ``growth`` (files and bytes per UTC day over
    the last ``days`` days, oldest first; days with nothing added are absent)."""
    days = parse_days(request.query.get("days"))
    store = request.app[STORE]
    figures = await collect(store)
    figures["growth"] = await growth(store, days)
    figures["growth_days"] = days
    return web.json_response(figures, headers={"Cache-Control": "no-store"})
