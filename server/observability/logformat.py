"""Log output: text for terminals, one JSON object per line for collectors.

Every record carries the id of the request it was logged in (see requestid.py); the
access log adds the request's own fields (method, route, status, bytes, duration,
client address, the API key's name when there is one).
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from server.observability import requestid

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


def configure(level: str, fmt: str) -> None:
    """Root logging for the process: ``fmt`` is "text" or "json"."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _route(request: web.BaseRequest) -> str:
    info = getattr(request, "match_info", None)
    resource = info.route.resource if info is not None and info.route else None
    return resource.canonical if resource is not None else "unmatched"


class AccessLogger(AbstractAccessLogger):
    """The access log, built from a handful of fields instead of aiohttp's format-string
    interpreter; in JSON mode the fields go out as they are."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse,
            duration: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        fields = {
            "method": request.method,
            "path": request.path,
            "route": _route(request),
            "status": response.status,
            "bytes": response.body_length,
            "duration_ms": round(duration * 1000, 2),
            "client_addr": request.remote,
            "request_id": request.get(requestid.REQUEST_ID),
        }
        key_name = request.get("principal_name")
        if key_name is not None:
            fields["key_name"] = key_name
        # The path without its query: signatures and upload tokens travel there.
        self.logger.info("%s %s %s %d %dB %.1fms rid=%s", request.remote, request.method,
                         request.path, response.status, response.body_length,
                         duration * 1000, fields["request_id"], extra=fields)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
