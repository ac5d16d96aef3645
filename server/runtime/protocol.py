"""aiohttp's own error pages (request-line and header parse errors), made ours.

aiohttp answers a request it cannot parse before any route or middleware sees it, from
``RequestHandler.handle_error``: with its own ``Server: Python/x aiohttp/y`` header, a
text body that echoes part of the request, and an ERROR log line with a traceback for
every malformed request, so a flood of them floods the log. Here that method answers
like the rest of the service: the JSON error shape, ``Server: media-store``, nothing
from the request echoed, and one short line in the access log (the details at DEBUG).
Only a real server fault (a 5xx that
no middleware caught) is still logged with its stack.

aiohttp has no setting for the handler class, so :class:`MediaRunner` gives its server
one, and :func:`run_app` is aiohttp's ``run_app`` with that runner (same signals, same
graceful shutdown).

The same handler bounds how long a connection may take to send its first request's
headers (MEDIA_HEADER_TIMEOUT_SECONDS). aiohttp has no header timeout of its own: the
keep-alive timer it arms when a connection opens (75 s) is the only thing that ever
closes a connection trickling a header line (slowloris), so a thousand of them hold
every descriptor of a server with the default 1,024 limit. Later requests on a kept-alive
connection are bounded by the keep-alive timer, bodies by the upload pace (uploads.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler

from server.errors import BadRequest, MediaError, render

# The kernel's queue of connections not yet accepted (capped by net.core.somaxconn).
# aiohttp's default of 128 overflows when a burst of clients reconnects at once (a
# network blip, a deploy); past it the kernel drops their SYNs and each waits 1 s, then
# 3 s, to retry. 2048 is gunicorn's and uvicorn's default.
BACKLOG = 2048

if TYPE_CHECKING:
    from server.runtime.balancer import HandedConnections

log = logging.getLogger("media.protocol")

SERVER_NAME = "media-store"


def parser_error_answer(status: int) -> web.Response:
    """The answer to a request aiohttp could not parse: nothing of it is echoed."""
    error = BadRequest("malformed request") if status < 500 else MediaError()
    error.status = status   # aiohttp's status stands (400 mostly; 5xx for its faults)
    resp = render(error)
    resp.headers["Server"] = SERVER_NAME
    resp.force_close()
    return resp


class MediaRequestHandler(RequestHandler):
    """aiohttp's connection handler, with the service's error pages and a deadline for
    the first request's headers."""

    header_timeout: float | None = None
    _header_deadline: asyncio.TimerHandle | None = None
    count_connection: Callable[[int], None] | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if self.count_connection is not None:
            self.count_connection(1)
        if self.header_timeout:
            self._header_deadline = self._loop.call_later(self.header_timeout,
                                                          self._headers_overdue)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.count_connection is not None:
            count, self.count_connection = self.count_connection, None
            count(-1)
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None
        super().connection_lost(exc)

    def _headers_overdue(self) -> None:
        self._header_deadline = None
        if self._request_count == 0 and self.transport is not None:
            # No request line and headers yet: nothing to answer (nginx closes such a
            # connection silently too, after client_header_timeout).
            log.debug("no request headers within %g s from %s: closed",
                      self.header_timeout,
                      self.transport.get_extra_info("peername"))
            self.force_close()

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            log.error("error handling a request from %s", request.remote, exc_info=exc)
        else:
            # A scanner or a broken client: the access log line is enough.
            log.debug("malformed request from %s: %s %s", request.remote, status,
                     exc.__class__.__name__ if exc is not None else "")
        if request.writer.output_size > 0:
            # Part of a response went out already: the connection is beyond repair.
            raise ConnectionError("response already started; cannot send an error")
        return parser_error_answer(status)


class MediaServer(web.Server):
    header_timeout: float | None = None
    # Called with 1 as each connection opens and -1 as it closes.
    count_connection: Callable[[int], None] | None = None

    def __call__(self) -> RequestHandler:
        handler = MediaRequestHandler(self, loop=self._loop, **self._kwargs)
        handler.header_timeout = self.header_timeout
        handler.count_connection = self.count_connection
        return handler


class MediaRunner(web.AppRunner):
    """An AppRunner whose connections are handled by :class:`MediaRequestHandler`."""

    def __init__(self, app: web.Application, *, header_timeout: float | None = None,
                 **kwargs):
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds the Server itself (with the app's handler and request
        # factory); only the class that makes each connection's handler changes.
        server.__class__ = MediaServer
        server.header_timeout = self.header_timeout
        return server


def run_app(app: web.Application, *, host: str, port: int, shutdown_timeout: float,
            access_log: logging.Logger, access_log_class: type[AbstractAccessLogger],
            print: Callable[[str], None], header_timeout: float | None = None,
            handed: HandedConnections | None = None,
            count_connection: Callable[[int], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM, then shut down gracefully (aiohttp's run_app, with
    :class:`MediaRunner`). ``handed``: serve the connections a supervisor hands over
    instead of listening on ``host``:``port``; ``count_connection``: called with 1 as
    each connection opens, -1 as it closes."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runner = MediaRunner(app, header_timeout=header_timeout,
                         handle_signals=True, shutdown_timeout=shutdown_timeout,
                         keepalive_timeout=75.0,   # run_app's default
                         access_log=access_log, access_log_class=access_log_class)

    async def serve() -> None:
        try:
            await runner.setup()
            runner.server.count_connection = count_connection
            if handed is not None:
                handed.start(runner.server)
                print(f"======== Serving connections to {host}:{port} handed over by "
                      "the supervisor ========")
            else:
                site = web.TCPSite(runner, host, port, backlog=BACKLOG)
                await site.start()
                print(f"======== Running on {site.name} ========")
            while True:
                await asyncio.sleep(3600)
        finally:
            if handed is not None:
                handed.stop()
            await runner.cleanup()

    main = loop.create_task(serve())
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        _ignore_further_stops(loop)
        try:
            if not main.done():
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            rest = asyncio.all_tasks(loop)
            for task in rest:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def _ignore_further_stops(loop: asyncio.AbstractEventLoop) -> None:
    """From the first stop on, SIGINT and SIGTERM are ignored: the stop under way (the
    requests in flight finishing, the pools closing) is not cut short by another
    GracefulExit raised in the middle of it. Operators and process managers signal
    twice, and a worker gets its parent-death SIGTERM once for each of the dead
    supervisor's threads the kernel moves it past. SIGKILL still ends a stop that
    hangs (the supervisor sends it past its deadline)."""
    stops = {signal.SIGINT, signal.SIGTERM}
    # Blocked while the loop's handlers give way to SIG_IGN: removing a handler puts
    # back the default, which for SIGTERM would kill the process.
    with contextlib.suppress(AttributeError, ValueError):   # not the main thread
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        try:
            for sig in stops:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_IGN)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
