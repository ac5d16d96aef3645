"""Log output: text for terminals, one JSON object per line for collectors.

Every record carries the id of the request it was logged in (see requestid.py); the
access log adds the request's own fields (method, route, status, bytes, duration,
client address, the API key's name when there is one).
"""
from __future__ import annotations

import asyncio
import atexit
import json
import logging
import logging.handlers
import os
import queue
import time
from datetime import datetime, timezone

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from server.observability import requestid
from server.observability.paths import route_of as _route
from server.observability.paths import safe_path as _safe_path
from server.secret import RedactingFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else set through ``extra=`` is a field to emit.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request's id (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = requestid.current.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
                            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class _QueueHandler(logging.handlers.QueueHandler):
    """Hands records to the writer thread as they are: formatting and the write to
    stderr happen there, not on the event loop (the access log is on every request)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if record.exc_info and not record.exc_text:
            # Tracebacks must be rendered here: the frames are gone later.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        return record


_listener: logging.handlers.QueueListener | None = None


def configure(level: str, fmt: str) -> None:
    """Root logging for the process: ``fmt`` is "text" or "json"."""
    global _listener
    if _listener is not None:
        _listener.stop()
        atexit.unregister(_listener.stop)   # a stopped listener cannot stop again
    out = logging.StreamHandler()
    # Secrets are masked in whatever the formatter produces (server/secret.py).
    out.setFormatter(RedactingFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)))
    records: queue.SimpleQueue = queue.SimpleQueue()
    handler = _QueueHandler(records)
    handler.addFilter(RequestIdFilter())   # in the caller's thread: the request's context
    handler.addFilter(_asyncpg_in_one_line)
    global _sink
    if _sink is not None:
        _sink.flush()
    _sink = AccessSink(fmt)
    atexit.register(_sink.flush)
    _listener = logging.handlers.QueueListener(records, out)
    _listener.start()
    atexit.register(_listener.stop)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _asyncpg_in_one_line(record: logging.LogRecord) -> bool:
    # asyncpg retries a lost database by itself and says so with a full traceback on
    # every attempt; during an outage that is pages of the same connection error. One
    # line each, naming the error, says all an operator can act on.
    if record.name.startswith("asyncpg") and record.exc_info \
            and record.exc_info[1] is not None:
        error = record.exc_info[1]
        record.msg = f"{record.getMessage()} ({error.__class__.__name__}: {error})"
        record.args = None
        record.exc_info = None
    return True


class AccessSink:
    """Where access lines go: formatted on the event loop in a few microseconds and
    written to stderr in one system call per FLUSH_SECONDS, not one per request through
    the logging machinery (which costs light requests a quarter of their throughput)."""

    FLUSH_SECONDS = 0.05
    MAX_BUFFERED = 256

    def __init__(self, fmt: str, fd: int = 2):
        self.json = fmt == "json"
        self.fd = fd
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""

    def _time(self, now: float) -> str:
        second = int(now)
        if second != self._second:   # strftime once a second, not once a request
            self._second = second
            fmt = "%Y-%m-%dT%H:%M:%S" if self.json else "%Y-%m-%d %H:%M:%S"
            self._stamp = time.strftime(fmt, time.gmtime(second) if self.json
                                        else time.localtime(second))
        ms = int((now - second) * 1000)
        return f"{self._stamp}.{ms:03d}+00:00" if self.json else f"{self._stamp},{ms:03d}"

    def add(self, fields: dict | None, message: str) -> None:
        """One line: ``message`` as text, or with ``fields`` as JSON."""
        now = time.time()
        if self.json:
            line = json.dumps({"time": self._time(now), "level": "INFO",
                               "logger": "media.access", "message": message,
                               **(fields or {})},
                              ensure_ascii=False)
        else:
            line = f"{self._time(now)} INFO media.access: {message}"
        if not self._lines:
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)
            except RuntimeError:       # no loop (a tool logging outside a server)
                self._lines.append(line)
                self.flush()
                return
        self._lines.append(line)
        if len(self._lines) >= self.MAX_BUFFERED:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        data = ("\n".join(self._lines) + "\n").encode("utf-8", "replace")
        self._lines.clear()
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError:
            pass   # stderr gone: nothing sensible left to do with the line


_sink: AccessSink | None = None


class AccessLogger(AbstractAccessLogger):
    """The access log: a handful of fields, through the AccessSink (text or JSON as
    LOG_FORMAT says), at INFO. Never the query string: signatures and upload tokens
    travel there."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse,
            duration: float) -> None:
        if _sink is None or not self.logger.isEnabledFor(logging.INFO):
            return
        # Still percent-encoded (one line); a secret in the path becomes its route.
        path = _safe_path(request)
        rid = request.get(requestid.REQUEST_ID)
        remote = request.remote
        message = (f"{remote} {request.method} {path} {response.status} "
                   f"{response.body_length}B {duration * 1000:.1f}ms rid={rid}")
        if not _sink.json:   # the line says it all: no fields to gather
            _sink.add(None, message)
            return
        fields = {
            "method": request.method,
            "path": path,
            "route": _route(request),
            "status": response.status,
            "bytes": response.body_length,
            "duration_ms": round(duration * 1000, 2),
            "client_addr": remote,
            "request_id": rid,
        }
        key_name = request.get(requestid.KEY_NAME)
        if key_name is not None:
            fields["key_name"] = key_name   # the key's name, never the key
        _sink.add(fields, message)

    @property
    def enabled(self) -> bool:
        return _sink is not None and self.logger.isEnabledFor(logging.INFO)
