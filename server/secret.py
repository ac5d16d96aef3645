"""Secrets in the configuration: never in a repr, a log line or an error message.

A secret setting (DATABASE_URL's password today; signing keys and Z-API tokens later)
is held as a :class:`Secret`: ``str``, ``repr`` and formatting show a masked form, and
only ``reveal()`` hands the value to the one call that needs it (the database driver,
an HMAC). A new secret setting is read in settings.py as ``Secret(raw)`` (or
``secret_url(raw)`` for a URL) and nothing else is needed.

As a second line, every secret value ever wrapped is remembered, and :func:`redact`
masks it, and any ``scheme://user:password@`` or ``password=`` in a URL, in text on
its way out: log records (:class:`RedactingFormatter`) and the one-line errors the
command line prints. Values shorter than :data:`MIN_REDACTED` are masked only in those
URL forms: replacing every "ab" in a log would garble it and hide nothing.
"""
from __future__ import annotations

import hmac
import json
import logging
import re
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
MIN_REDACTED = 4

_remembered: set[str] = set()

# user:password@ in any URL; the password may not hold '@', '/' or whitespace unescaped.
_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)([^@/\s]+)(@)")
# libpq also takes the password as a URI parameter.
_PASSWORD_PARAM = re.compile(r"([?&]password=)([^&#\s]*)", re.IGNORECASE)


def _remember(value: str) -> None:
    if len(value) >= MIN_REDACTED:
        _remembered.add(value)
        # As it appears inside a JSON log line (LOG_FORMAT=json).
        _remembered.add(json.dumps(value, ensure_ascii=False)[1:-1])


class Secret:
    """A setting's value that must not be printed; ``reveal()`` to use it."""

    __slots__ = ("_value", "_shown")

    def __init__(self, value: str, shown: str = MASK, *, remember: bool = True):
        self._value = value
        self._shown = shown
        if remember:
            _remember(value)

    def reveal(self) -> str:
        """The value itself, for the call that needs it; never for printing."""
        return self._value

    def __str__(self) -> str:
        return self._shown

    def __repr__(self) -> str:
        return f"Secret({self._shown!r})"

    def __format__(self, spec: str) -> str:
        return format(self._shown, spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(
            self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):
        # Pickling (multiprocessing, caches) would write the value out in clear.
        raise TypeError("a Secret is not serialisable")


def mask_url(url: str) -> str:
    """``url`` with its password (user info or ``password=`` parameter) masked."""
    return _PASSWORD_PARAM.sub(rf"\1{MASK}", _USERINFO.sub(rf"\1{MASK}\3", url))


def secret_url(url: str) -> Secret:
    """A URL whose password is the secret; shown with only the password masked, so
    host, port, user and database stay readable in a repr."""
    try:
        parts = urlsplit(url)
        passwords = [parts.password or ""]
        passwords += [v for k, v in parse_qsl(parts.query) if k.lower() == "password"]
    except ValueError:   # not a URL urlsplit understands: the whole of it is the secret
        return Secret(url)
    for password in passwords:
        _remember(password)
        _remember(unquote(password))
    # Only the password is remembered: the rest of the URL may be logged.
    return Secret(url, shown=mask_url(url), remember=False)


def redact(text: str) -> str:
    """``text`` with every remembered secret and every URL password masked."""
    text = mask_url(text)
    for value in sorted(_remembered, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


class RedactingFormatter(logging.Formatter):
    """Wraps a log formatter: whatever it makes of a record (message, arguments,
    traceback, JSON fields) goes through :func:`redact`."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))
