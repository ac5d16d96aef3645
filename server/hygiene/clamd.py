"""A small asyncio client for clamd's INSTREAM command (clamd(8), "zINSTREAM").

The session: connect (unix socket or TCP), send ``zINSTREAM\\0``, then the bytes as
chunks, each prefixed with its length as 4 bytes big-endian, then a zero length; clamd
answers one NUL-terminated line: ``stream: OK``, ``stream: <signature> FOUND``, or
``... ERROR`` (e.g. ``INSTREAM size limit exceeded. ERROR`` past its StreamMaxLength).
Every step is bounded by ``timeout``: a clamd that accepts and never answers is as
unavailable as one that is down. The verdict, which clamd gives once it has scanned
the whole stream, gets a second more per SCAN_BYTES_PER_SECOND sent (a large video
takes clamd a while).
"""
from __future__ import annotations

import asyncio
import dataclasses
import struct
import sys
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    _timeout = asyncio.timeout
else:   # aiohttp's own dependency there; raises asyncio.TimeoutError too
    from async_timeout import timeout as _timeout

MAX_ANSWER = 4096
# clamd reads a chunk into a buffer of its own; pieces larger than this are split.
MAX_CHUNK = 1024 * 1024
SCAN_BYTES_PER_SECOND = 20 * 1024 * 1024


class ClamdUnavailable(Exception):
    """clamd could not be reached, timed out, or answered an error."""


@dataclasses.dataclass(frozen=True)
class Address:
    """Where clamd listens: ``unix:///run/clamav/clamd.ctl`` or ``tcp://127.0.0.1:3310``."""
    scheme: str
    path: str | None = None
    host: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        return f"unix://{self.path}" if self.scheme == "unix" else \
            f"tcp://{self.host}:{self.port}"


def parse_address(text: str) -> Address:
    """Raise ValueError with what is wrong."""
    parts = urlsplit(text.strip())
    if parts.scheme == "unix":
        if not parts.path or parts.netloc:
            raise ValueError("unix:// needs an absolute socket path (unix:///path/clamd.ctl)")
        return Address("unix", path=parts.path)
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or parts.path not in ("", "/"):
            raise ValueError("tcp:// needs a host and a port (tcp://127.0.0.1:3310)")
        return Address("tcp", host=parts.hostname, port=port)
    raise ValueError("expected unix:///path/to/clamd.ctl or tcp://host:port")


@dataclasses.dataclass(frozen=True)
class Verdict:
    clean: bool
    signature: str | None = None


def parse_answer(raw: bytes) -> Verdict:
    """clamd's answer to INSTREAM; ClamdUnavailable for an error or nonsense."""
    text = raw.rstrip(b"\0\n").decode("utf-8", "replace").strip()
    if text.endswith("ERROR"):
        raise ClamdUnavailable(f"clamd: {text}")
    _, sep, rest = text.partition(": ")
    if not sep:
        raise ClamdUnavailable(f"clamd answered {text[:200]!r}")
    if rest == "OK":
        return Verdict(True)
    if rest.endswith(" FOUND"):
        return Verdict(False, rest[:-len(" FOUND")].strip()[:200] or "unknown")
    raise ClamdUnavailable(f"clamd answered {text[:200]!r}")


class InStream:
    """One INSTREAM session: ``send`` the bytes, then ``verdict``; ``close`` if not."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float):
        self._reader, self._writer, self._timeout = reader, writer, timeout
        self.sent = 0

    @classmethod
    async def open(cls, address: Address, timeout: float) -> "InStream":
        async def connect():
            if address.scheme == "unix":
                reader, writer = await asyncio.open_unix_connection(address.path)
            else:
                reader, writer = await asyncio.open_connection(address.host, address.port)
            writer.write(b"zINSTREAM\0")
            await writer.drain()
            return reader, writer
        try:
            reader, writer = await asyncio.wait_for(connect(), timeout)
        except (OSError, asyncio.TimeoutError) as e:
            raise ClamdUnavailable(f"cannot reach clamd at {address}: "
                                   f"{e.__class__.__name__}") from None
        return cls(reader, writer, timeout)

    async def send(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        for i in range(0, len(view), MAX_CHUNK):
            piece = view[i:i + MAX_CHUNK]
            self._writer.write(struct.pack(">I", len(piece)))
            self._writer.write(piece)
        self.sent += len(view)
        await self._step(self._writer.drain())

    async def verdict(self) -> Verdict:
        """End the stream and wait for clamd's answer."""
        try:
            self._writer.write(struct.pack(">I", 0))
            await self._step(self._writer.drain())
            raw = await self._step(self._reader.readuntil(b"\0"),
                                   self._timeout + self.sent / SCAN_BYTES_PER_SECOND)
        except asyncio.IncompleteReadError as e:
            raise ClamdUnavailable("clamd closed the connection without an answer") from e
        except asyncio.LimitOverrunError as e:
            raise ClamdUnavailable("clamd's answer is too long") from e
        finally:
            await self.close()
        return parse_answer(raw[:MAX_ANSWER])

    async def close(self) -> None:
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)
        except (OSError, asyncio.TimeoutError):
            pass

    async def _step(self, awaitable, seconds: float | None = None):
        seconds = self._timeout if seconds is None else seconds
        try:
            # A timeout scope, not wait_for: no task of its own per piece sent.
            async with _timeout(seconds):
                return await awaitable
        except asyncio.TimeoutError:
            raise ClamdUnavailable(f"clamd took more than {seconds:.1f} s") from None
        except OSError as e:
            raise ClamdUnavailable(f"clamd connection failed: {e.__class__.__name__}") \
                from None
