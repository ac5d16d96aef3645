"""What ``serve`` hands the runtime (server/runtime/processes.py): this service's app,
its access log and its logging, each built in the process that serves it.

Imports stay inside the methods: a supervisor pickles a :class:`MediaService` for its
workers without ever loading the app itself.
"""
from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger

from server.runtime.processes import Served
from server.settings import Settings


class MediaService:
    """The :class:`server.runtime.processes.Service` of this service."""

    def configure_logging(self, settings: Settings) -> None:
        """A spawned worker's logging, as the command set up its own."""
        from server.observability.logformat import configure
        configure(settings.server.log_level, settings.server.log_format)

    def load(self) -> type[AbstractAccessLogger]:
        """Import the app's modules; the access log's class."""
        import server.app  # noqa: F401  (loaded before the runtime freezes what exists)
        from server.observability.logformat import AccessLogger
        return AccessLogger

    def build(self, settings: Settings, dsn: str) -> Served:
        """The app, and the gauge of its open connections."""
        from server.observability.metrics import METRICS
        from server.app import create_app
        app = create_app(settings, dsn)
        return Served(app, app[METRICS].connections.inc)
