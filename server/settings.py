"""Settings: read from the environment once, validated, then passed around as one object.

A bad value stops start-up with a message that names the variable, so a typo in a
deployment never turns into a half-working server. Secret values are held as
server.secret.Secret (masked in repr, logs and errors) and never echoed in a message.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

# The media types the service can recognise; MEDIA_ALLOWED_TYPES picks among them.
from server.http.media_types import DEFAULT_ALLOWED, KNOWN
from server.secret import Secret, secret_url


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, as a container sets it)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


# Server processes by default: one per core, up to this many. Each opens its own pool
# (DB_POOL_MAX connections), and PostgreSQL's default max_connections is 100.
MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    return min(usable_cores(), MAX_DEFAULT_WORKERS)


class SettingsError(ValueError):
    """A configuration variable has a value the service cannot use."""


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SecretKeys(tuple):
    """The URL-signing keys: a tuple of bytes that never shows its contents in a repr
    (settings get logged and printed in tracebacks)."""

    def __repr__(self) -> str:
        return f"SecretKeys(<{len(self)} hidden>)"


LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                 ipaddress.ip_network("::1/128"))


@dataclasses.dataclass(frozen=True)
class Settings:
    # None: the embedded PostgreSQL in data_dir. A Secret (its password masked); a str
    # given here is wrapped.
    database_url: Secret | None = None
    # Streaming replicas for reads of complete media (DATABASE_READ_URL, comma-separated).
    database_read_urls: tuple[Secret, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./var")
    max_upload_bytes: int = 2 * 1024**3
    chunk_bytes: int = 261_120             # 255 KiB, as GridFS; a multiple of 3
    pool_min: int = 2
    pool_max: int = 10
    pool_acquire_timeout: float = 30.0
    auto_migrate: bool = True
    # An 'uploading' row untouched this long belongs to a dead upload (a crashed
    # instance or a vanished client) and the janitor reclaims it.
    upload_stale_seconds: int = 3600
    janitor_interval_seconds: int = 300
    # Resumable (tus) uploads wait this long for their client, then the janitor takes them.
    tus_expiry_seconds: int = 86400
    # One request's hold on a tus upload (renewed while it writes or its completion is
    # processed): a dead instance's hold runs out after this, then anyone may go on.
    tus_lease_seconds: float = 120.0
    # A PATCH with Upload-Checksum is held in memory until verified: this bounds one.
    tus_checksum_max_bytes: int = 64 * 1024 * 1024
    # Unfinished tus uploads one key or token may have at once (each may hold up to
    # MEDIA_MAX_UPLOAD_BYTES for MEDIA_TUS_EXPIRY_SECONDS); the next creation gets 429.
    tus_max_open_per_client: int = 32
    read_ahead_chunks: int = 4
    # How long the serving path may reuse a file's metadata (0: ask the database on
    # every request). Bounds how long another instance's DELETE can go unnoticed by
    # HEAD and 304 answers here; a GET of deleted media is a 404 regardless.
    metadata_cache_seconds: float = 30.0
    # An upload whose client sends nothing for this long is cut (408) and removed: a
    # stalled or malicious client must not keep a request open forever.
    upload_idle_timeout: float = 120.0
    # On SIGTERM, requests in flight get this long to finish before they are cut (an
    # upload cut this way is aborted and removed). Below Docker's 10 s grace period, so
    # a stalled client cannot turn a clean stop into a SIGKILL.
    shutdown_timeout: float = 8.0
    # Instances beat this often; one silent for instance_dead_seconds is taken for dead
    # and its half-received uploads are reclaimed by the others.
    # Decoded chunks kept in memory by each process for short reads (0: off).
    cache_bytes: int = 64 * 1024 * 1024
    # Server processes sharing the port: one per core (at most 4) unless set, since one
    # process uses one core (docs/performance.md).
    workers: int = dataclasses.field(default_factory=default_workers)
    heartbeat_seconds: float = 15.0
    instance_dead_seconds: float = 60.0
    log_level: str = "INFO"
    # Media processing (server/processing): what is done to uploads.
    processing: bool = True
    allowed_types: frozenset[str] = DEFAULT_ALLOWED
    max_image_bytes: int = 64 * 1024**2
    max_video_bytes: int = 2 * 1024**3
    max_audio_bytes: int = 512 * 1024**2
    max_document_bytes: int = 2 * 1024**3
    image_compress: bool = True
    image_quality: int = 82
    image_max_edge: int = 2560
    keep_image_metadata: bool = False
    # Video and audio: container metadata (GPS, comments, titles) removed by a remux.
    keep_video_metadata: bool = False
    # Decoded pixels allowed per image (all frames of an animation together): a file of
    # a few hundred bytes may claim 50000x50000 pixels.
    max_image_pixels: int = 100_000_000
    # Threads per server process for Pillow and FFmpeg: the cores shared among workers.
    process_concurrency: int = dataclasses.field(
        default_factory=lambda: max(1, usable_cores() // default_workers()))
    # One file's processing is stopped past this (plus a second per 10 MiB of file):
    # a 200 KB progressive JPEG of 3,000 scans costs 50 s of CPU.
    processing_timeout_seconds: float = 20.0
    # What the files being processed at once may take together, by estimates from
    # their headers (a 10000x10000 RGBA PNG: ~800 MB); also each worker's hard limit.
    processing_memory_bytes: int = 1024**3
    log_format: str = "text"               # text (terminals) | json (one object per line)
    # Access control (server/security). Signed media URLs live this long; their expiry
    # is rounded up to a tenth of it so the same file keeps the same URL for a while.
    url_ttl_seconds: int = 86400
    # Empty: one key is generated once and kept in the database. The first signs, all
    # verify, so a key can be rotated without breaking the links already handed out.
    signing_keys: SecretKeys = SecretKeys()
    public_read: bool = False
    cors_origins: tuple[str, ...] = ()
    audit_reads: bool = False
    # The janitor deletes audit rows older than this, in small batches.
    audit_retention_days: int = 365
    trusted_proxies: tuple[Network, ...] = ()
    metrics_allow: tuple[Network, ...] = LOOPBACK
    # The legacy folder (/uploads/media) during the move: files not imported yet are
    # served from it. After the sunset, legacy URLs answer 410.
    legacy_dir: Path | None = None
    legacy_sunset: datetime | None = None
    # Since when the legacy URLs are deprecated (the Deprecation header, RFC 9745);
    # unset: no Deprecation header (the RFC has no value for an unknown date).
    legacy_deprecated_at: datetime | None = None

    def __post_init__(self) -> None:
        if isinstance(self.database_url, str):
            object.__setattr__(self, "database_url", secret_url(self.database_url))
        object.__setattr__(self, "database_read_urls", tuple(
            secret_url(u) if isinstance(u, str) else u for u in self.database_read_urls))
    # Limits against abuse (docs/limits.md); each bounds what one client or
    # one stalled peer can hold on to.
    send_timeout: float = 60.0              # a response write with no progress this long
    header_timeout: float = 15.0            # a new connection's first request headers
    upload_min_rate: int = 1024             # bytes/s an upload must average ...
    upload_rate_window: float = 60.0        # ... over each window this long
    max_concurrent_uploads: int = 256       # per instance; the next gets 503
    db_command_timeout: float = 30.0        # every statement, client side
    # ... of the admin commands (server/cli/); None: unbounded. An hour: longer than any
    # one statement they run (a stats count or a cleanup over a large chunk table), yet
    # a cron'ed reclaim facing a frozen database still ends instead of piling up.
    db_admin_command_timeout: float | None = 3600.0
    max_range_chunks: int = 8               # chunk reads one multi-range request may cost

    # Z-API (server/zapi/). The instance id and token sit in Z-API's URL path and, with
    # the client token and the webhook secret, are credentials: kept out of repr() so
    # they never reach a log line through the settings object.
    zapi_base_url: str = "https://api.z-api.io"
    zapi_instance_id: str | None = dataclasses.field(default=None, repr=False)
    zapi_token: str | None = dataclasses.field(default=None, repr=False)
    zapi_client_token: str | None = dataclasses.field(default=None, repr=False)
    zapi_webhook_secret: str | None = dataclasses.field(default=None, repr=False)
    zapi_media_mode: str = "base64"          # or "url": Z-API fetches PUBLIC_BASE_URL/...
    public_base_url: str | None = None
    zapi_timeout: float = 30.0
    zapi_max_attempts: int = 6
    zapi_retry_base: float = 2.0
    # A send that timed out may already be queued at Z-API (no idempotency key there):
    # by default it is left 'unknown' rather than risk a duplicate on the phone.
    zapi_retry_unknown: bool = False
    zapi_max_concurrency: int = 1
    # How long a claimed delivery belongs to the instance that claimed it; past this a
    # crashed instance's claim is recovered by any other (see server/zapi/outbox.py).
    zapi_lease_seconds: float = 90.0

    # POST /api/media/import-url (server/ingest/url.py): who may be fetched.
    media_import_allow_http: bool = False
    media_import_hosts: tuple[str, ...] = ()    # empty: any public host
    media_import_allow_private: bool = False
    media_import_connect_timeout: float = 10.0
    media_import_timeout: float = 300.0

    # Virus scanning (server/hygiene/scanning.py): clamd's address, unix:///path or
    # tcp://host:port (None: off); how long any step with it may take; and whether an
    # upload is refused (closed) or stored unscanned (open) while clamd is away.
    scan_clamd: str | None = None
    scan_timeout_seconds: float = 30.0
    scan_fail_open: bool = False

    @property
    def zapi_enabled(self) -> bool:
        """Sending is on only with the three credentials Z-API asks for."""
        return bool(self.zapi_instance_id and self.zapi_token and self.zapi_client_token)


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    # Blank counts as unset, as for every other variable: HOST="" would otherwise bind
    # every interface, and LOG_LEVEL="" would stop start-up over nothing.
    raw = (env.get(name) or "").strip()
    return raw or default


def _number(env: Mapping[str, str], name: str, default, lo, hi, parse, what: str):
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be {what}, got {raw!r}") from None
    if not lo <= value <= hi:   # also refuses nan
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, lo: int, hi: int) -> int:
    return _number(env, name, default, lo, hi, int, "an integer")


def _float(env: Mapping[str, str], name: str, default: float, *, lo: float, hi: float) -> float:
    return _number(env, name, default, lo, hi, float, "a number")


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _networks(env: Mapping[str, str], name: str, default: tuple[Network, ...]
              ) -> tuple[Network, ...]:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return tuple(ipaddress.ip_network(p.strip(), strict=False)
                     for p in raw.split(",") if p.strip())
    except ValueError as e:
        raise SettingsError(f"{name} must be comma-separated addresses or CIDRs: {e}") from None


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def _origins(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = (env.get("MEDIA_CORS_ORIGINS") or "").strip()
    found = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in found:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise SettingsError(f"MEDIA_CORS_ORIGINS: {origin!r} is not an origin "
                                "(scheme://host[:port], or *)")
    return found


def _signing_keys(env: Mapping[str, str]) -> SecretKeys:
    raw = (env.get("MEDIA_SIGNING_KEYS") or "").strip()
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    for i, key in enumerate(keys, 1):
        # Never echo a key back, not even a bad one: error messages get logged.
        if len(key) < 32 or not key.isascii() or not key.isprintable():
            raise SettingsError(f"MEDIA_SIGNING_KEYS: key #{i} must be at least 32 "
                                "printable ASCII characters")
    return SecretKeys(k.encode() for k in keys)


def _database_url(env: Mapping[str, str]) -> Secret | None:
    # Never quote the value in an error: it holds a password.
    raw = (env.get("DATABASE_URL") or "").strip()
    if not raw:
        return None
    if not raw.startswith(("postgres://", "postgresql://")):
        raise SettingsError("DATABASE_URL must start with postgresql:// or postgres://")
    try:
        urlsplit(raw).port   # raises on a port that is not a number in range
    except ValueError:
        raise SettingsError("DATABASE_URL has an invalid port") from None
    return secret_url(raw)


def _allowed_types(env: Mapping[str, str]) -> frozenset[str]:
    raw = (env.get("MEDIA_ALLOWED_TYPES") or "").strip()
    if not raw:   # unset or blank: the default list
        return DEFAULT_ALLOWED
    types = frozenset(t.strip().lower() for t in raw.split(",") if t.strip())
    unknown = sorted(types - KNOWN.keys())
    if unknown or not types:
        raise SettingsError(
            f"MEDIA_ALLOWED_TYPES: {', '.join(unknown) or 'empty'} not recognised; "
            f"known types: {', '.join(sorted(KNOWN))}")
    return types


def _secret(env: Mapping[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip()
    if raw and not all(c.isalnum() or c in "-_." for c in raw):
        # It goes into a URL path (or a header) verbatim; the value itself is never echoed.
        raise SettingsError(f"{name} may hold only letters, digits, '-', '_' and '.'")
    return raw or None


def _http_url(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment:
        raise SettingsError(f"{name} must be an http(s) URL without query, got {raw!r}")
    return raw.rstrip("/")


def _zapi(env: Mapping[str, str]) -> dict:
    mode = _str(env, "ZAPI_MEDIA_MODE", Settings.zapi_media_mode).lower()
    if mode not in ("base64", "url"):
        raise SettingsError(f"ZAPI_MEDIA_MODE must be base64 or url, got {mode!r}")
    public = _http_url(env, "PUBLIC_BASE_URL", None)
    if mode == "url" and not public:
        raise SettingsError("ZAPI_MEDIA_MODE=url needs PUBLIC_BASE_URL (where Z-API "
                            "fetches the media from)")
    creds = {name: _secret(env, name) for name in
             ("ZAPI_INSTANCE_ID", "ZAPI_TOKEN", "ZAPI_CLIENT_TOKEN")}
    given = [n for n, v in creds.items() if v]
    if given and len(given) < len(creds):
        missing = sorted(set(creds) - set(given))
        raise SettingsError(f"{', '.join(missing)} must be set with {', '.join(given)} "
                            "(or leave all three unset to keep sending off)")
    secret = _secret(env, "ZAPI_WEBHOOK_SECRET")
    if secret and len(secret) < 16:
        raise SettingsError("ZAPI_WEBHOOK_SECRET must be at least 16 characters: it is "
                            "the webhook's only authentication")
    timeout = _float(env, "ZAPI_TIMEOUT_SECONDS", Settings.zapi_timeout, lo=1, hi=600)
    lease = _float(env, "ZAPI_LEASE_SECONDS", Settings.zapi_lease_seconds, lo=2, hi=86400)
    if lease <= timeout:
        raise SettingsError(f"ZAPI_LEASE_SECONDS ({lease}) must exceed "
                            f"ZAPI_TIMEOUT_SECONDS ({timeout}): a claim must outlive its "
                            "request")
    return dict(
        zapi_base_url=_http_url(env, "ZAPI_BASE_URL", Settings.zapi_base_url),
        zapi_instance_id=creds["ZAPI_INSTANCE_ID"],
        zapi_token=creds["ZAPI_TOKEN"],
        zapi_client_token=creds["ZAPI_CLIENT_TOKEN"],
        zapi_webhook_secret=secret,
        zapi_media_mode=mode,
        public_base_url=public,
        zapi_timeout=timeout,
        zapi_max_attempts=_int(env, "ZAPI_MAX_ATTEMPTS", Settings.zapi_max_attempts,
                               lo=1, hi=100),
        zapi_retry_base=_float(env, "ZAPI_RETRY_BASE_SECONDS", Settings.zapi_retry_base,
                               lo=0.01, hi=3600),
        zapi_retry_unknown=_bool(env, "ZAPI_RETRY_UNKNOWN", Settings.zapi_retry_unknown),
        zapi_max_concurrency=_int(env, "ZAPI_MAX_CONCURRENCY",
                                  Settings.zapi_max_concurrency, lo=1, hi=64),
        zapi_lease_seconds=lease,
    )


def _import_hosts(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = (env.get("MEDIA_IMPORT_HOSTS") or "").strip()
    hosts = tuple(h.strip().lower().rstrip(".") for h in raw.split(",") if h.strip())
    for h in hosts:
        bare = h[2:] if h.startswith("*.") else h
        if not bare or any(not (c.isalnum() or c in "-.") for c in bare):
            raise SettingsError(f"MEDIA_IMPORT_HOSTS: {h!r} is not a host name "
                                "(names, or *.domain for its subdomains, comma-separated)")
    return hosts


def _media_import(env: Mapping[str, str]) -> dict:
    return dict(
        media_import_allow_http=_bool(env, "MEDIA_IMPORT_ALLOW_HTTP",
                                      Settings.media_import_allow_http),
        media_import_hosts=_import_hosts(env),
        media_import_allow_private=_bool(env, "MEDIA_IMPORT_ALLOW_PRIVATE",
                                         Settings.media_import_allow_private),
        media_import_connect_timeout=_float(env, "MEDIA_IMPORT_CONNECT_TIMEOUT_SECONDS",
                                            Settings.media_import_connect_timeout,
                                            lo=0.1, hi=600),
        media_import_timeout=_float(env, "MEDIA_IMPORT_TIMEOUT_SECONDS",
                                    Settings.media_import_timeout, lo=1, hi=86400),
    )


def _read_urls(env: Mapping[str, str]) -> tuple[Secret, ...]:
    # Never quote a value in an error: each may hold a password.
    urls = tuple(u.strip() for u in (env.get("DATABASE_READ_URL") or "").split(",")
                 if u.strip())
    for u in urls:
        if not u.startswith(("postgres://", "postgresql://")):
            raise SettingsError("DATABASE_READ_URL must be postgresql:// URLs, "
                                "separated by commas")
        try:
            urlsplit(u).port
        except ValueError:
            raise SettingsError("DATABASE_READ_URL has an invalid port") from None
    return tuple(secret_url(u) for u in urls)


def _legacy_dir(env: Mapping[str, str]) -> Path | None:
    raw = (env.get("MEDIA_LEGACY_DIR") or "").strip()
    if not raw:
        return None
    path = Path(raw)
    if not path.is_dir():
        raise SettingsError(f"MEDIA_LEGACY_DIR must be an existing folder, got {raw!r}")
    return path


def _instant(env: Mapping[str, str], name: str) -> datetime | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(f"{name} must be an ISO 8601 date or date and time "
                            f"(2027-01-31 or 2027-01-31T00:00:00Z), got {raw!r}") from None
    # A date or time without a zone is UTC: the header it becomes is in GMT anyway.
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _legacy_dates(env: Mapping[str, str]) -> dict:
    deprecated = _instant(env, "MEDIA_LEGACY_DEPRECATED_AT")
    sunset = _instant(env, "MEDIA_LEGACY_SUNSET")
    if deprecated is not None and sunset is not None and sunset < deprecated:
        # RFC 9745 §3: a resource cannot go away before it was deprecated.
        raise SettingsError(f"MEDIA_LEGACY_SUNSET ({sunset.isoformat()}) must not be "
                            f"before MEDIA_LEGACY_DEPRECATED_AT ({deprecated.isoformat()})")
    return {"legacy_deprecated_at": deprecated, "legacy_sunset": sunset}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``env`` (default: ``os.environ``); raise SettingsError."""
    env = os.environ if env is None else env
    chunk = _int(env, "MEDIA_CHUNK_BYTES", Settings.chunk_bytes, lo=3, hi=64 * 1024 * 1024)
    if chunk % 3:
        raise SettingsError(
            f"MEDIA_CHUNK_BYTES must be a multiple of 3 so that each chunk's base64 "
            f"stands alone, got {chunk}")
    pool_min = _int(env, "DB_POOL_MIN", Settings.pool_min, lo=0, hi=1000)
    pool_max = _int(env, "DB_POOL_MAX", Settings.pool_max, lo=1, hi=1000)
    if pool_min > pool_max:
        raise SettingsError(f"DB_POOL_MIN ({pool_min}) must not exceed DB_POOL_MAX ({pool_max})")
    level = _str(env, "LOG_LEVEL", Settings.log_level).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    heartbeat = _float(env, "MEDIA_HEARTBEAT_SECONDS", Settings.heartbeat_seconds,
                       lo=0.1, hi=3600)
    dead = _float(env, "MEDIA_INSTANCE_DEAD_SECONDS", Settings.instance_dead_seconds,
                  lo=1, hi=86400)
    if dead < 2 * heartbeat:
        raise SettingsError(f"MEDIA_INSTANCE_DEAD_SECONDS ({dead}) must be at least twice "
                            f"MEDIA_HEARTBEAT_SECONDS ({heartbeat}): one late beat is not death")
    log_format = _str(env, "LOG_FORMAT", Settings.log_format).lower()
    if log_format not in ("text", "json"):
        raise SettingsError(f"LOG_FORMAT must be text or json, got {log_format!r}")
    data_dir = _str(env, "MEDIA_DATA_DIR", str(Settings.data_dir))
    workers = _int(env, "MEDIA_WORKERS", default_workers(), lo=1, hi=256)
    return Settings(
        database_url=_database_url(env),
        database_read_urls=_read_urls(env),
        host=_str(env, "HOST", Settings.host),
        # Not 0: the OS would pick a port and nothing would tell the proxy which.
        port=_int(env, "PORT", Settings.port, lo=1, hi=65535),
        data_dir=Path(data_dir),
        max_upload_bytes=_int(env, "MEDIA_MAX_UPLOAD_BYTES", Settings.max_upload_bytes,
                              lo=1, hi=2**62),
        chunk_bytes=chunk,
        pool_min=pool_min,
        pool_max=pool_max,
        pool_acquire_timeout=_float(env, "DB_POOL_ACQUIRE_TIMEOUT",
                                    Settings.pool_acquire_timeout, lo=0.1, hi=3600),
        auto_migrate=_bool(env, "MEDIA_AUTO_MIGRATE", Settings.auto_migrate),
        upload_stale_seconds=_int(env, "MEDIA_UPLOAD_STALE_SECONDS",
                                  Settings.upload_stale_seconds, lo=1, hi=30 * 86400),
        tus_expiry_seconds=_int(env, "MEDIA_TUS_EXPIRY_SECONDS", Settings.tus_expiry_seconds,
                                lo=1, hi=30 * 86400),
        tus_lease_seconds=_float(env, "MEDIA_TUS_LEASE_SECONDS", Settings.tus_lease_seconds,
                                 lo=1, hi=86400),
        tus_checksum_max_bytes=_int(env, "MEDIA_TUS_CHECKSUM_MAX_BYTES",
                                    Settings.tus_checksum_max_bytes, lo=1, hi=2**31),
        tus_max_open_per_client=_int(env, "MEDIA_TUS_MAX_OPEN_PER_CLIENT",
                                     Settings.tus_max_open_per_client, lo=1, hi=1_000_000),
        janitor_interval_seconds=_int(env, "MEDIA_JANITOR_INTERVAL_SECONDS",
                                      Settings.janitor_interval_seconds, lo=1, hi=86400),
        read_ahead_chunks=_int(env, "MEDIA_READ_AHEAD_CHUNKS", Settings.read_ahead_chunks,
                               lo=1, hi=64),
        metadata_cache_seconds=_float(env, "MEDIA_METADATA_CACHE_SECONDS",
                                      Settings.metadata_cache_seconds, lo=0, hi=86400),
        upload_idle_timeout=_float(env, "MEDIA_UPLOAD_IDLE_TIMEOUT_SECONDS",
                                   Settings.upload_idle_timeout, lo=1, hi=86400),
        shutdown_timeout=_float(env, "MEDIA_SHUTDOWN_TIMEOUT_SECONDS",
                                Settings.shutdown_timeout, lo=0, hi=3600),
        cache_bytes=_int(env, "MEDIA_CACHE_BYTES", Settings.cache_bytes, lo=0, hi=2**40),
        workers=workers,
        heartbeat_seconds=heartbeat,
        instance_dead_seconds=dead,
        log_level=level,
        processing=_bool(env, "MEDIA_PROCESSING", Settings.processing),
        allowed_types=_allowed_types(env),
        max_image_bytes=_int(env, "MEDIA_MAX_IMAGE_BYTES", Settings.max_image_bytes,
                             lo=1, hi=2**62),
        max_video_bytes=_int(env, "MEDIA_MAX_VIDEO_BYTES", Settings.max_video_bytes,
                             lo=1, hi=2**62),
        max_audio_bytes=_int(env, "MEDIA_MAX_AUDIO_BYTES", Settings.max_audio_bytes,
                             lo=1, hi=2**62),
        max_document_bytes=_int(env, "MEDIA_MAX_DOCUMENT_BYTES", Settings.max_document_bytes,
                                lo=1, hi=2**62),
        image_compress=_bool(env, "MEDIA_IMAGE_COMPRESS", Settings.image_compress),
        image_quality=_int(env, "MEDIA_IMAGE_QUALITY", Settings.image_quality, lo=1, hi=100),
        image_max_edge=_int(env, "MEDIA_IMAGE_MAX_EDGE", Settings.image_max_edge,
                            lo=16, hi=65_535),
        keep_image_metadata=_bool(env, "MEDIA_KEEP_IMAGE_METADATA",
                                  Settings.keep_image_metadata),
        keep_video_metadata=_bool(env, "MEDIA_KEEP_VIDEO_METADATA",
                                  Settings.keep_video_metadata),
        max_image_pixels=_int(env, "MEDIA_MAX_IMAGE_PIXELS", Settings.max_image_pixels,
                              lo=1, hi=2**40),
        process_concurrency=_int(env, "MEDIA_PROCESS_CONCURRENCY",
                                 max(1, usable_cores() // workers), lo=1, hi=256),
        processing_timeout_seconds=_float(env, "MEDIA_PROCESSING_TIMEOUT_SECONDS",
                                          Settings.processing_timeout_seconds,
                                          lo=0.1, hi=86400),
        processing_memory_bytes=_int(env, "MEDIA_PROCESSING_MEMORY_BYTES",
                                     Settings.processing_memory_bytes,
                                     lo=64 * 1024**2, hi=2**44),
        log_format=log_format,
        url_ttl_seconds=_int(env, "MEDIA_URL_TTL_SECONDS", Settings.url_ttl_seconds,
                             lo=10, hi=365 * 86400),
        signing_keys=_signing_keys(env),
        public_read=_bool(env, "MEDIA_PUBLIC_READ", Settings.public_read),
        cors_origins=_origins(env),
        audit_reads=_bool(env, "MEDIA_AUDIT_READS", Settings.audit_reads),
        audit_retention_days=_int(env, "MEDIA_AUDIT_RETENTION_DAYS",
                                  Settings.audit_retention_days, lo=1, hi=36500),
        trusted_proxies=_networks(env, "MEDIA_TRUSTED_PROXIES", ()),
        metrics_allow=_networks(env, "MEDIA_METRICS_ALLOW", LOOPBACK),
        send_timeout=_float(env, "MEDIA_SEND_TIMEOUT_SECONDS", Settings.send_timeout,
                            lo=1, hi=86400),
        header_timeout=_float(env, "MEDIA_HEADER_TIMEOUT_SECONDS", Settings.header_timeout,
                              lo=0.1, hi=3600),
        upload_min_rate=_int(env, "MEDIA_UPLOAD_MIN_RATE_BYTES_PER_SECOND",
                             Settings.upload_min_rate, lo=0, hi=2**40),
        upload_rate_window=_float(env, "MEDIA_UPLOAD_RATE_WINDOW_SECONDS",
                                  Settings.upload_rate_window, lo=1, hi=86400),
        max_concurrent_uploads=_int(env, "MEDIA_MAX_CONCURRENT_UPLOADS",
                                    Settings.max_concurrent_uploads, lo=1, hi=100_000),
        db_command_timeout=_float(env, "DB_COMMAND_TIMEOUT_SECONDS",
                                  Settings.db_command_timeout, lo=0.1, hi=86400),
        db_admin_command_timeout=_float(env, "DB_ADMIN_COMMAND_TIMEOUT_SECONDS",
                                        Settings.db_admin_command_timeout,
                                        lo=0, hi=7 * 86400) or None,
        max_range_chunks=_int(env, "MEDIA_MAX_RANGE_CHUNKS", Settings.max_range_chunks,
                              lo=1, hi=100_000),
        legacy_dir=_legacy_dir(env),
        **_legacy_dates(env),
        **_zapi(env),
        **_media_import(env),
        **_scanning(env),
    )


def _scanning(env: Mapping[str, str]) -> dict:
    clamd = _str(env, "MEDIA_SCAN_CLAMD", "") or None
    if clamd is not None:
        parts = urlsplit(clamd)
        try:
            port = parts.port
        except ValueError:
            port = None
        if not ((parts.scheme == "unix" and parts.path.startswith("/") and not parts.netloc)
                or (parts.scheme == "tcp" and parts.hostname and port is not None)):
            raise SettingsError("MEDIA_SCAN_CLAMD must be unix:///path/to/clamd.ctl or "
                                f"tcp://host:port, got {clamd!r}")
    fail = _str(env, "MEDIA_SCAN_FAIL", "closed").lower()
    if fail not in ("closed", "open"):
        raise SettingsError(f"MEDIA_SCAN_FAIL must be closed or open, got {fail!r}")
    return dict(scan_clamd=clamd, scan_fail_open=fail == "open",
                scan_timeout_seconds=_float(env, "MEDIA_SCAN_TIMEOUT_SECONDS",
                                            Settings.scan_timeout_seconds, lo=0.1, hi=3600))


# The application's settings, read once at start-up.
SETTINGS = web.AppKey("settings", Settings)
