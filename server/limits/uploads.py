"""Bounds on uploads: their content coding, how many run at once, and their pace.

- Media is already compressed, and aiohttp would inflate a ``Content-Encoding: gzip``
  body before anything counts it (a 1 MB body can become a stored 1 GiB file). An upload
  whose body has any coding other than ``identity`` is refused (415) before a byte of
  it is read.
- Every upload holds a socket, a descriptor and an ``uploading`` row: at most
  MEDIA_MAX_CONCURRENT_UPLOADS run on one instance; the next is told 503 with
  Retry-After, before anything is read or stored.
- The idle timeout never fires on a trickle (one byte every 15 s): an upload must also
  average MEDIA_UPLOAD_MIN_RATE_BYTES_PER_SECOND over every window of
  MEDIA_UPLOAD_RATE_WINDOW_SECONDS, or it is cut with 408 and removed.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from aiohttp import web
from multidict import MultiMapping

from server.errors import TooManyUploads, UnsupportedContentEncoding, UploadTooSlow
from server.settings import Settings

def has_content_coding(headers: MultiMapping[str]) -> bool:
    """Whether a request's Content-Encoding names any coding but ``identity``
    (RFC 9110 §8.4: a list, case-insensitive; empty members are ignored)."""
    values = headers.getall("Content-Encoding", ())
    codings = [c.strip().lower() for v in values for c in v.split(",")]
    return any(c and c != "identity" for c in codings)


def refuse_content_coding(headers: MultiMapping[str]) -> None:
    """Raise 415 for a coded upload body, before anything reads it."""
    if has_content_coding(headers):
        raise UnsupportedContentEncoding()


class UploadSlots:
    """At most ``limit`` uploads at once on this instance (one event loop: no lock)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_use = 0

    @property
    def full(self) -> bool:
        return self.in_use >= self.limit

    @contextlib.contextmanager
    def take(self) -> Iterator[None]:
        """Hold a slot for the block, or raise TooManyUploads (503; the error
        middleware adds Retry-After)."""
        if self.full:
            raise TooManyUploads()
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1


def upload_pace(settings: Settings) -> Pace | None:
    """A fresh Pace for one upload starting now, or None when the minimum rate is off."""
    if settings.uploads.min_rate <= 0:
        return None
    return Pace(settings.uploads.min_rate, settings.uploads.rate_window,
                asyncio.get_running_loop().time())


class Pace:
    """The minimum average rate of an upload, checked window by window.

    Windows follow each other from the start of the upload; each must bring at least
    ``rate * window`` bytes. Pure: the caller passes the clock in.
    """

    def __init__(self, rate: float, window: float, now: float):
        self.rate = rate
        self.window = window
        self.start = now      # start of the current window
        self.got = 0          # bytes received in it

    @property
    def need(self) -> float:
        return self.rate * self.window

    def deadline(self) -> float:
        """The latest time the next bytes may come without the pace failing: the end of
        this window if it is still short, else the end of the next one."""
        end = self.start + self.window
        return end if self.got < self.need else end + self.window

    def check(self, now: float) -> None:
        """Close every window that has ended by ``now``; raise UploadTooSlow if one of
        them fell short."""
        while now >= self.start + self.window:
            if self.got < self.need:
                raise UploadTooSlow()
            self.start += self.window
            self.got = 0

    def feed(self, now: float, nbytes: int) -> None:
        """Count bytes that arrived at ``now``."""
        self.check(now)
        self.got += nbytes


# The application's upload slots (MEDIA_MAX_CONCURRENT_UPLOADS).
UPLOAD_SLOTS = web.AppKey("upload_slots", UploadSlots)
