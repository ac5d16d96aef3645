"""Importing media by URL (POST /api/media/import-url), safe against request forgery.

A client names a URL and the server fetches it, so every hop is held to the rules in
addresses.py before any byte leaves:

- the scheme is https (http only with MEDIA_IMPORT_ALLOW_HTTP), the host is on
  MEDIA_IMPORT_HOSTS when that list is set;
- a host written as an address (in any spelling) is judged as that address; a name is
  resolved ONCE, by PinnedResolver, which refuses the whole name if any of its
  addresses is refused and hands aiohttp the addresses it checked, so aiohttp connects
  to exactly those (no second lookup that a rebinding DNS server could answer
  differently); TLS still verifies the certificate against the name;
- redirects are followed by hand, at most MAX_REDIRECTS, each target checked again;
- no proxy from the environment (trust_env stays off), connect and total timeouts.

The body then goes through the same receive() and processing as an upload, and takes
an upload slot (the route): MEDIA_ALLOWED_TYPES, the overall and per-type size limits,
the minimum rate (a trickling server is cut off), metadata stripping, pixel limits,
previews, chunked storage, nothing left behind on failure.
"""
from __future__ import annotations

import asyncio
import socket
from pathlib import PurePosixPath
from urllib.parse import unquote

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from server.errors import (
    ImportFailed,
    ImportTimeout,
    PayloadTooLarge,
    UploadTimeout,
    UploadTooSlow,
    UrlNotAllowed,
)
from server.ingest.addresses import address_allowed, host_allowed, parse_ip
from server.ingest.receive import Limits, receive
from server.limits.uploads import refuse_content_coding, upload_pace
from server.processing.pipeline import Job, Processing
from server.settings import Settings
from server.store.media import MediaRecord, MediaStore, Upload

MAX_REDIRECTS = 3
MAX_URL_LENGTH = 2048
READ_BYTES = 256 * 1024
_REDIRECTS = {301, 302, 303, 307, 308}


class AddressRefused(Exception):
    """A name resolved to an address that may not be fetched from. Deliberately not an
    OSError: aiohttp would wrap that into a connection error and try the next address."""

    def __init__(self, host: str, reason: str):
        super().__init__(f"{host} resolves to a {reason} address")
        self.reason = reason


class PinnedResolver(AbstractResolver):
    """Resolves a name once and returns only addresses it has checked; any refused
    address refuses the name, so a mixed answer cannot be raced."""

    def __init__(self, allow_private: bool):
        self._inner = aiohttp.ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        literal = parse_ip(host)
        if literal is not None:
            # Spellings aiohttp does not take for addresses (0x7f000001) reach here.
            self._check(host, literal)
            return [{"hostname": host, "host": str(literal), "port": port,
                     "family": socket.AF_INET6 if literal.version == 6 else socket.AF_INET,
                     "proto": 0, "flags": socket.AI_NUMERICHOST}]
        infos = await self._inner.resolve(host, port, family)
        for info in infos:
            ip = parse_ip(info["host"])
            if ip is None:
                raise AddressRefused(host, "unparseable")
            self._check(host, ip)
        return infos

    def _check(self, host: str, ip) -> None:
        why = address_allowed(ip, allow_private=self._allow_private)
        if why is not None:
            raise AddressRefused(host, why)

    async def close(self) -> None:
        await self._inner.close()


def check_url(url: URL, settings: Settings) -> None:
    """Refuse a URL (UrlNotAllowed) on its scheme, host or literal address; the
    addresses of a name are checked when it is resolved."""
    allowed = ("https", "http") if settings.import_url.allow_http else ("https",)
    if url.scheme not in allowed:
        need = "http or https" if settings.import_url.allow_http else "https"
        raise UrlNotAllowed(f"only {need} URLs may be imported")
    host = url.raw_host
    if not host:
        raise UrlNotAllowed("the URL has no host")
    if url.user is not None or url.password is not None:
        raise UrlNotAllowed("URLs with credentials are not imported")
    if not host_allowed(host, settings.import_url.hosts):
        raise UrlNotAllowed(f"{host} is not on MEDIA_IMPORT_HOSTS")
    ip = parse_ip(host)
    if ip is not None:
        why = address_allowed(ip, allow_private=settings.import_url.allow_private)
        if why is not None:
            raise UrlNotAllowed(f"{host} is a {why} address")


def parse_url(text: str) -> URL:
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_URL_LENGTH:
        raise UrlNotAllowed(f"url must be an absolute URL of at most {MAX_URL_LENGTH} "
                            "characters")
    try:
        url = URL(text.strip())
    except ValueError:
        raise UrlNotAllowed("url is not a valid URL") from None
    if not url.is_absolute():
        raise UrlNotAllowed("url must be absolute")
    return url


def _name_from(url: URL, resp: aiohttp.ClientResponse) -> str | None:
    cd = resp.content_disposition
    if cd is not None and cd.filename:
        return cd.filename
    last = PurePosixPath(unquote(url.path)).name
    return last or None


async def import_url(store: MediaStore, processing: Processing, settings: Settings,
                     text: str, message_id: int, file_name: str | None = None, *,
                     audit=None, guard=None) -> MediaRecord:
    """Fetch ``text`` under the rules above and store it as a complete file of
    ``message_id``, through the upload's pipeline (``processing``). Raises
    UrlNotAllowed, ImportFailed, ImportTimeout or the upload's errors (413, 415, 422,
    empty file); nothing is stored then. ``audit`` (an audit entry) is written with the
    file, in the same transaction; ``guard`` (server/hygiene) sees the bytes as an
    upload's."""
    url = parse_url(text)
    timeout = aiohttp.ClientTimeout(total=settings.import_url.timeout,
                                    sock_connect=settings.import_url.connect_timeout)
    connector = aiohttp.TCPConnector(
        resolver=PinnedResolver(settings.import_url.allow_private),
        use_dns_cache=False, limit=1, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     trust_env=False, auto_decompress=False) as session:
        try:
            job = await _download(session, store, processing, settings, url, file_name,
                                  guard)
        except AddressRefused as e:
            raise UrlNotAllowed(str(e)) from None
        except UploadTooSlow:
            raise ImportTimeout("the URL's server sent slower than the minimum upload "
                                "rate") from None
        except (asyncio.TimeoutError, UploadTimeout):
            raise ImportTimeout() from None
        except aiohttp.InvalidURL as e:
            raise UrlNotAllowed(f"url is not acceptable: {e}") from None
        except aiohttp.ClientConnectorError as e:
            raise ImportFailed(f"could not connect to {url.host}: "
                               f"{e.os_error.strerror or e}") from None
        except (aiohttp.ClientError, OSError) as e:
            raise ImportFailed(f"the download broke off: {e.__class__.__name__}") from None
        # Processing's failures are its own, not the download's. Without processing
        # (MEDIA_PROCESSING=off) receive hands back a plain Upload, whose finish does
        # not clean up after itself.
        try:
            return await job.finish(message_id, audit=audit)
        except BaseException:
            await job.abort()
            raise


async def _download(session: aiohttp.ClientSession, store: MediaStore,
                    processing: Processing, settings: Settings, url: URL,
                    file_name: str | None, guard=None) -> Upload | Job:
    """Follow redirects to the file and receive its body as an upload's (type policy,
    per-type limits, minimum rate); the caller finishes the job."""
    for _ in range(MAX_REDIRECTS + 1):
        check_url(url, settings)
        async with session.get(url, allow_redirects=False,
                               headers={"Accept-Encoding": "identity",
                                        "User-Agent": "media-store"}) as resp:
            if resp.status in _REDIRECTS:
                location = resp.headers.get("Location")
                if not location:
                    raise ImportFailed(f"a {resp.status} redirect without Location")
                try:
                    url = url.join(URL(location))
                except ValueError:
                    raise UrlNotAllowed("the redirect's Location is not a valid URL") \
                        from None
                continue
            if resp.status != 200:
                raise ImportFailed(f"the URL's server answered {resp.status}")
            if resp.content_length is not None and \
                    resp.content_length > settings.uploads.max_bytes:
                raise PayloadTooLarge()
            # Asked for identity; a coded body is refused as an upload's is.
            refuse_content_coding(resp.headers)
            limits = Limits(settings.uploads.max_bytes, settings.uploads.idle_timeout,
                            upload_pace(settings))
            return await receive(store, lambda: resp.content.read(READ_BYTES),
                                 file_name or _name_from(url, resp), limits, processing,
                                 guard=guard)
    raise ImportFailed(f"more than {MAX_REDIRECTS} redirects")
