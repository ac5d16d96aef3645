"""Settings: read from the environment once, validated, then passed around as one object.

A bad value stops start-up with a message that names the variable, so a typo in a
deployment never turns into a half-working server. Secret values are held as
server.secret.Secret (masked in repr, logs and errors) and never echoed in a message.

``Settings`` holds one frozen section per part of the service, named for its package:
``settings.db`` (PostgreSQL), ``server`` (listening, processes, logs), ``store`` (chunks
and serving them), ``uploads``, ``tus``, ``processing``, ``security``, ``workers`` (the
background loops), ``legacy``, ``zapi``, ``import_url`` and ``scan`` (virus
scanning). A field drops its section's prefix (``settings.tus.expiry_seconds`` for
MEDIA_TUS_EXPIRY_SECONDS); each field's variable is named in a comment beside it.

A new setting: a field in the section of the package that reads it (with its default
and its variable in a comment), its reading and checks in that section's builder below
(``_tus(env)`` for TusSettings, ...; a value checked against another is read in the same
builder), a row in that section's table in docs/configuration.md, and its variable in
tests/procs.py SETTINGS_VARS and tests/process/test_settings.py PARSED. Tests change
settings with ``replace_settings(settings, tus__expiry_seconds=5)``.
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
from server.retention.rules import RetentionRule, parse_rules
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
class DbSettings:
    """PostgreSQL (server/store/pool.py, store/replicas.py, cli/embedded_pg.py)."""
    # None: the embedded PostgreSQL in data_dir. A Secret (its password masked); a str
    # given here is wrapped.
    url: Secret | None = None                                   # DATABASE_URL
    # Streaming replicas for reads of complete media (DATABASE_READ_URL, comma-separated).
    read_urls: tuple[Secret, ...] = ()
    data_dir: Path = Path("./var")                              # MEDIA_DATA_DIR
    pool_min: int = 2                                           # DB_POOL_MIN
    pool_max: int = 10                                          # DB_POOL_MAX
    pool_acquire_timeout: float = 30.0                          # DB_POOL_ACQUIRE_TIMEOUT
    command_timeout: float = 30.0       # DB_COMMAND_TIMEOUT_SECONDS: every statement, client side
    # ... of the admin commands (server/cli/); None: unbounded. An hour: longer than any
    # one statement they run (a stats count or a cleanup over a large chunk table), yet
    # a cron'ed reclaim facing a frozen database still ends instead of piling up.
    admin_command_timeout: float | None = 3600.0                # DB_ADMIN_COMMAND_TIMEOUT_SECONDS
    auto_migrate: bool = True                                   # MEDIA_AUTO_MIGRATE

    def __post_init__(self) -> None:
        if isinstance(self.url, str):
            object.__setattr__(self, "url", secret_url(self.url))
        object.__setattr__(self, "read_urls", tuple(
            secret_url(u) if isinstance(u, str) else u for u in self.read_urls))


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """The process: listening, its workers, stopping, logging (server/runtime/, cli/)."""
    host: str = "127.0.0.1"                                     # HOST
    port: int = 8080                                            # PORT
    # Server processes sharing the port: one per core (at most 4) unless set, since one
    # process uses one core (docs/performance.md).
    workers: int = dataclasses.field(default_factory=default_workers)   # MEDIA_WORKERS
    # On SIGTERM, requests in flight get this long to finish before they are cut (an
    # upload cut this way is aborted and removed). Below Docker's 10 s grace period, so
    # a stalled client cannot turn a clean stop into a SIGKILL.
    shutdown_timeout: float = 8.0               # MEDIA_SHUTDOWN_TIMEOUT_SECONDS
    # Limits against abuse (docs/limits.md): what one stalled peer can hold on to.
    header_timeout: float = 15.0    # MEDIA_HEADER_TIMEOUT_SECONDS: a new connection's first headers
    send_timeout: float = 60.0      # MEDIA_SEND_TIMEOUT_SECONDS: a response write with no progress
    log_level: str = "INFO"                                     # LOG_LEVEL
    log_format: str = "text"        # LOG_FORMAT: text (terminals) | json (one object per line)


@dataclasses.dataclass(frozen=True)
class StoreSettings:
    """Stored chunks and serving them (server/store/, api/serve.py)."""
    chunk_bytes: int = 261_120      # MEDIA_CHUNK_BYTES: 255 KiB, as GridFS; a multiple of 3
    read_ahead_chunks: int = 4                                  # MEDIA_READ_AHEAD_CHUNKS
    # How long the serving path may reuse a file's metadata (0: ask the database on
    # every request). Bounds how long another instance's DELETE can go unnoticed by
    # HEAD and 304 answers here; a GET of deleted media is a 404 regardless.
    metadata_cache_seconds: float = 30.0                        # MEDIA_METADATA_CACHE_SECONDS
    # Decoded chunks kept in memory by each process for short reads (0: off).
    cache_bytes: int = 64 * 1024 * 1024                         # MEDIA_CACHE_BYTES
    # Chunk reads one multi-range request may cost.
    max_range_chunks: int = 8                                   # MEDIA_MAX_RANGE_CHUNKS
    # Content no media row or variant shows any more is deleted this long after it was
    # last pointed at (store/contents.py): an upload about to point at it never loses it.
    orphan_grace_seconds: int = 600                             # MEDIA_ORPHAN_GRACE_SECONDS


@dataclasses.dataclass(frozen=True)
class UploadsSettings:
    """Receiving files (server/ingest/, api/upload.py, limits/uploads.py; docs/limits.md)."""
    max_bytes: int = 2 * 1024**3                                # MEDIA_MAX_UPLOAD_BYTES
    # An upload whose client sends nothing for this long is cut (408) and removed: a
    # stalled or malicious client must not keep a request open forever.
    idle_timeout: float = 120.0                 # MEDIA_UPLOAD_IDLE_TIMEOUT_SECONDS
    # An upload must average min_rate bytes/s over each window of rate_window seconds.
    min_rate: int = 1024                            # MEDIA_UPLOAD_MIN_RATE_BYTES_PER_SECOND
    rate_window: float = 60.0                       # MEDIA_UPLOAD_RATE_WINDOW_SECONDS
    max_concurrent: int = 256       # MEDIA_MAX_CONCURRENT_UPLOADS: per process; the next gets 503
    # An 'uploading' row untouched this long belongs to a dead upload (a crashed
    # instance or a vanished client) and the janitor reclaims it.
    stale_seconds: int = 3600                                   # MEDIA_UPLOAD_STALE_SECONDS


@dataclasses.dataclass(frozen=True)
class TusSettings:
    """Resumable uploads (server/tus/, api/tus.py)."""
    # Unfinished uploads wait this long for their client, then the janitor takes them.
    expiry_seconds: int = 86400                                 # MEDIA_TUS_EXPIRY_SECONDS
    # One request's hold on a tus upload (renewed while it writes or its completion is
    # processed): a dead instance's hold runs out after this, then anyone may go on.
    lease_seconds: float = 120.0                                # MEDIA_TUS_LEASE_SECONDS
    # A PATCH with Upload-Checksum is held in memory until verified: this bounds one.
    checksum_max_bytes: int = 64 * 1024 * 1024                  # MEDIA_TUS_CHECKSUM_MAX_BYTES
    # Unfinished tus uploads one key or token may have at once (each may hold up to
    # MEDIA_MAX_UPLOAD_BYTES for MEDIA_TUS_EXPIRY_SECONDS); the next creation gets 429.
    max_open_per_client: int = 32                               # MEDIA_TUS_MAX_OPEN_PER_CLIENT


@dataclasses.dataclass(frozen=True)
class ProcessingSettings:
    """What is done to uploads (server/processing/); read through processing.policy.Policy."""
    enabled: bool = True                                        # MEDIA_PROCESSING
    allowed_types: frozenset[str] = DEFAULT_ALLOWED             # MEDIA_ALLOWED_TYPES
    max_image_bytes: int = 64 * 1024**2                         # MEDIA_MAX_IMAGE_BYTES
    max_video_bytes: int = 2 * 1024**3                          # MEDIA_MAX_VIDEO_BYTES
    max_audio_bytes: int = 512 * 1024**2                        # MEDIA_MAX_AUDIO_BYTES
    max_document_bytes: int = 2 * 1024**3                       # MEDIA_MAX_DOCUMENT_BYTES
    image_compress: bool = True                                 # MEDIA_IMAGE_COMPRESS
    image_quality: int = 82                                     # MEDIA_IMAGE_QUALITY
    image_max_edge: int = 2560                                  # MEDIA_IMAGE_MAX_EDGE
    keep_image_metadata: bool = False                           # MEDIA_KEEP_IMAGE_METADATA
    # Video and audio: container metadata (GPS, comments, titles) removed by a remux.
    keep_video_metadata: bool = False                           # MEDIA_KEEP_VIDEO_METADATA
    # Decoded pixels allowed per image (all frames of an animation together): a file of
    # a few hundred bytes may claim 50000x50000 pixels.
    max_image_pixels: int = 100_000_000                         # MEDIA_MAX_IMAGE_PIXELS
    # Threads per server process for Pillow and FFmpeg: the cores shared among workers.
    concurrency: int = dataclasses.field(                       # MEDIA_PROCESS_CONCURRENCY
        default_factory=lambda: max(1, usable_cores() // default_workers()))
    # One file's processing is stopped past this (plus a second per 10 MiB of file):
    # a 200 KB progressive JPEG of 3,000 scans costs 50 s of CPU.
    timeout_seconds: float = 20.0                               # MEDIA_PROCESSING_TIMEOUT_SECONDS
    # What the files being processed at once may take together, by estimates from
    # their headers (a 10000x10000 RGBA PNG: ~800 MB); also each worker's hard limit.
    memory_bytes: int = 1024**3                                 # MEDIA_PROCESSING_MEMORY_BYTES
    # Thumbnails (server/processing/thumbnails.py): (width, height, "crop"|"scale") each;
    # the eager ones are made at upload, the others on their first request.
    thumbnail_sizes: tuple[tuple[int, int, str], ...] = (       # MEDIA_THUMBNAIL_SIZES
        (32, 32, "crop"), (96, 96, "crop"), (320, 240, "scale"), (640, 480, "scale"),
        (800, 600, "scale"))
    thumbnail_eager: tuple[tuple[int, int, str], ...] = (       # MEDIA_THUMBNAIL_EAGER
        (32, 32, "crop"), (96, 96, "crop"))
    # Beyond these an animation's thumbnail is a still (its first frame): pixels of all
    # frames together, and the source's bytes. A still beyond the pixels gets 422.
    thumbnail_max_source_pixels: int = 100_000_000     # MEDIA_THUMBNAIL_MAX_SOURCE_PIXELS
    thumbnail_max_animated_bytes: int = 16 * 1024**2   # MEDIA_THUMBNAIL_MAX_ANIMATED_BYTES


@dataclasses.dataclass(frozen=True)
class SecuritySettings:
    """Access control, signed URLs, CORS, audit (server/security/)."""
    # Signed media URLs live this long; their expiry is rounded up to a tenth of it so
    # the same file keeps the same URL for a while.
    url_ttl_seconds: int = 86400                                # MEDIA_URL_TTL_SECONDS
    # Empty: one key is generated once and kept in the database. The first signs, all
    # verify, so a key can be rotated without breaking the links already handed out.
    signing_keys: SecretKeys = SecretKeys()                     # MEDIA_SIGNING_KEYS
    public_read: bool = False                                   # MEDIA_PUBLIC_READ
    cors_origins: tuple[str, ...] = ()                          # MEDIA_CORS_ORIGINS
    audit_reads: bool = False                                   # MEDIA_AUDIT_READS
    # The janitor deletes audit rows older than this, in small batches.
    audit_retention_days: int = 365                             # MEDIA_AUDIT_RETENTION_DAYS
    trusted_proxies: tuple[Network, ...] = ()                   # MEDIA_TRUSTED_PROXIES
    metrics_allow: tuple[Network, ...] = LOOPBACK               # MEDIA_METRICS_ALLOW


@dataclasses.dataclass(frozen=True)
class WorkersSettings:
    """The background workers each instance runs (server/workers/)."""
    janitor_interval_seconds: int = 300                         # MEDIA_JANITOR_INTERVAL_SECONDS
    # Instances beat this often; one silent for instance_dead_seconds is taken for dead
    # and its half-received uploads are reclaimed by the others.
    heartbeat_seconds: float = 15.0                             # MEDIA_HEARTBEAT_SECONDS
    instance_dead_seconds: float = 60.0                         # MEDIA_INSTANCE_DEAD_SECONDS
    # Media older than their type's rule are purged in small batches (retention/rules.py,
    # workers/retention.py); empty: media are kept forever.
    retention: tuple[RetentionRule, ...] = ()                   # MEDIA_RETENTION


@dataclasses.dataclass(frozen=True)
class LegacySettings:
    """The legacy folder (/uploads/media) during the move (server/legacy/, api/legacy_urls.py):
    files not imported yet are served from it. After the sunset, legacy URLs answer 410."""
    dir: Path | None = None                                     # MEDIA_LEGACY_DIR
    sunset: datetime | None = None                              # MEDIA_LEGACY_SUNSET
    # Since when the legacy URLs are deprecated (the Deprecation header, RFC 9745);
    # unset: no Deprecation header (the RFC has no value for an unknown date).
    deprecated_at: datetime | None = None                       # MEDIA_LEGACY_DEPRECATED_AT


@dataclasses.dataclass(frozen=True)
class ZapiSettings:
    """Z-API (server/zapi/, workers/outbox.py, api/zapi_webhook.py). The instance id and
    token sit in Z-API's URL path and, with the client token and the webhook secret, are
    credentials: kept out of repr() so they never reach a log line through the settings."""
    base_url: str = "https://api.z-api.io"                      # ZAPI_BASE_URL
    instance_id: str | None = dataclasses.field(default=None, repr=False)    # ZAPI_INSTANCE_ID
    token: str | None = dataclasses.field(default=None, repr=False)          # ZAPI_TOKEN
    client_token: str | None = dataclasses.field(default=None, repr=False)   # ZAPI_CLIENT_TOKEN
    webhook_secret: str | None = dataclasses.field(default=None, repr=False)  # ZAPI_WEBHOOK_SECRET
    media_mode: str = "base64"      # ZAPI_MEDIA_MODE; or "url": Z-API fetches PUBLIC_BASE_URL/...
    public_base_url: str | None = None                          # PUBLIC_BASE_URL
    timeout: float = 30.0                                       # ZAPI_TIMEOUT_SECONDS
    max_attempts: int = 6                                       # ZAPI_MAX_ATTEMPTS
    retry_base: float = 2.0                                     # ZAPI_RETRY_BASE_SECONDS
    # A send that timed out may already be queued at Z-API (no idempotency key there):
    # by default it is left 'unknown' rather than risk a duplicate on the phone.
    retry_unknown: bool = False                                 # ZAPI_RETRY_UNKNOWN
    max_concurrency: int = 1                                    # ZAPI_MAX_CONCURRENCY
    # How long a claimed delivery belongs to the instance that claimed it; past this a
    # crashed instance's claim is recovered by any other (see server/zapi/outbox.py).
    lease_seconds: float = 90.0                                 # ZAPI_LEASE_SECONDS


    @property
    def enabled(self) -> bool:
        """Sending is on only with the three credentials Z-API asks for."""
        return bool(self.instance_id and self.token and self.client_token)


@dataclasses.dataclass(frozen=True)
class ScanSettings:
    """Virus scanning (server/hygiene/scanning.py)."""
    # clamd's address, unix:///path or tcp://host:port; None: no scanning.
    clamd: str | None = None                                    # MEDIA_SCAN_CLAMD
    timeout_seconds: float = 30.0                               # MEDIA_SCAN_TIMEOUT_SECONDS
    # While clamd is away: refuse uploads (closed) or store them unscanned (open).
    fail_open: bool = False                                     # MEDIA_SCAN_FAIL


@dataclasses.dataclass(frozen=True)
class ImportUrlSettings:
    """POST /api/media/import-url (server/ingest/url.py): who may be fetched."""
    allow_http: bool = False                                    # MEDIA_IMPORT_ALLOW_HTTP
    hosts: tuple[str, ...] = ()     # MEDIA_IMPORT_HOSTS; empty: any public host
    allow_private: bool = False                                 # MEDIA_IMPORT_ALLOW_PRIVATE
    connect_timeout: float = 10.0                   # MEDIA_IMPORT_CONNECT_TIMEOUT_SECONDS
    timeout: float = 300.0                                      # MEDIA_IMPORT_TIMEOUT_SECONDS


def _section(cls):
    return dataclasses.field(default_factory=cls)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting, by section: ``settings.tus.expiry_seconds``, ``settings.db.pool_max``."""
    db: DbSettings = _section(DbSettings)
    server: ServerSettings = _section(ServerSettings)
    store: StoreSettings = _section(StoreSettings)
    uploads: UploadsSettings = _section(UploadsSettings)
    tus: TusSettings = _section(TusSettings)
    processing: ProcessingSettings = _section(ProcessingSettings)
    security: SecuritySettings = _section(SecuritySettings)
    workers: WorkersSettings = _section(WorkersSettings)
    legacy: LegacySettings = _section(LegacySettings)
    zapi: ZapiSettings = _section(ZapiSettings)
    import_url: ImportUrlSettings = _section(ImportUrlSettings)
    scan: ScanSettings = _section(ScanSettings)


def replace_settings(settings: Settings, **changes) -> Settings:
    """A copy of ``settings`` with ``section__field=value`` changes (as in
    ``replace_settings(s, tus__expiry_seconds=5, db__url=dsn)``), or whole sections
    (``zapi=ZapiSettings(...)``)."""
    by_section: dict[str, dict] = {}
    whole: dict[str, object] = {}
    for key, value in changes.items():
        section, sep, name = key.partition("__")
        if not sep:
            whole[key] = value
        else:
            by_section.setdefault(section, {})[name] = value
    for section, fields in by_section.items():
        whole[section] = dataclasses.replace(whole.get(section, getattr(settings, section)),
                                             **fields)
    return dataclasses.replace(settings, **whole)


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


def _zapi(env: Mapping[str, str]) -> ZapiSettings:
    mode = _str(env, "ZAPI_MEDIA_MODE", ZapiSettings.media_mode).lower()
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
    timeout = _float(env, "ZAPI_TIMEOUT_SECONDS", ZapiSettings.timeout, lo=1, hi=600)
    lease = _float(env, "ZAPI_LEASE_SECONDS", ZapiSettings.lease_seconds, lo=2, hi=86400)
    if lease <= timeout:
        raise SettingsError(f"ZAPI_LEASE_SECONDS ({lease}) must exceed "
                            f"ZAPI_TIMEOUT_SECONDS ({timeout}): a claim must outlive its "
                            "request")
    return ZapiSettings(
        base_url=_http_url(env, "ZAPI_BASE_URL", ZapiSettings.base_url),
        instance_id=creds["ZAPI_INSTANCE_ID"],
        token=creds["ZAPI_TOKEN"],
        client_token=creds["ZAPI_CLIENT_TOKEN"],
        webhook_secret=secret,
        media_mode=mode,
        public_base_url=public,
        timeout=timeout,
        max_attempts=_int(env, "ZAPI_MAX_ATTEMPTS", ZapiSettings.max_attempts, lo=1, hi=100),
        retry_base=_float(env, "ZAPI_RETRY_BASE_SECONDS", ZapiSettings.retry_base,
                          lo=0.01, hi=3600),
        retry_unknown=_bool(env, "ZAPI_RETRY_UNKNOWN", ZapiSettings.retry_unknown),
        max_concurrency=_int(env, "ZAPI_MAX_CONCURRENCY", ZapiSettings.max_concurrency,
                             lo=1, hi=64),
        lease_seconds=lease,
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


def _import_url(env: Mapping[str, str]) -> ImportUrlSettings:
    d = ImportUrlSettings
    return ImportUrlSettings(
        allow_http=_bool(env, "MEDIA_IMPORT_ALLOW_HTTP", d.allow_http),
        hosts=_import_hosts(env),
        allow_private=_bool(env, "MEDIA_IMPORT_ALLOW_PRIVATE", d.allow_private),
        connect_timeout=_float(env, "MEDIA_IMPORT_CONNECT_TIMEOUT_SECONDS",
                               d.connect_timeout, lo=0.1, hi=600),
        timeout=_float(env, "MEDIA_IMPORT_TIMEOUT_SECONDS", d.timeout, lo=1, hi=86400),
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


def _legacy(env: Mapping[str, str]) -> LegacySettings:
    legacy_dir = _legacy_dir(env)
    deprecated = _instant(env, "MEDIA_LEGACY_DEPRECATED_AT")
    sunset = _instant(env, "MEDIA_LEGACY_SUNSET")
    if deprecated is not None and sunset is not None and sunset < deprecated:
        # RFC 9745 §3: a resource cannot go away before it was deprecated.
        raise SettingsError(f"MEDIA_LEGACY_SUNSET ({sunset.isoformat()}) must not be "
                            f"before MEDIA_LEGACY_DEPRECATED_AT ({deprecated.isoformat()})")
    return LegacySettings(dir=legacy_dir, sunset=sunset, deprecated_at=deprecated)


def _db(env: Mapping[str, str]) -> DbSettings:
    d = DbSettings
    pool_min = _int(env, "DB_POOL_MIN", d.pool_min, lo=0, hi=1000)
    pool_max = _int(env, "DB_POOL_MAX", d.pool_max, lo=1, hi=1000)
    if pool_min > pool_max:
        raise SettingsError(f"DB_POOL_MIN ({pool_min}) must not exceed DB_POOL_MAX ({pool_max})")
    return DbSettings(
        url=_database_url(env),
        read_urls=_read_urls(env),
        data_dir=Path(_str(env, "MEDIA_DATA_DIR", str(d.data_dir))),
        pool_min=pool_min,
        pool_max=pool_max,
        pool_acquire_timeout=_float(env, "DB_POOL_ACQUIRE_TIMEOUT", d.pool_acquire_timeout,
                                    lo=0.1, hi=3600),
        command_timeout=_float(env, "DB_COMMAND_TIMEOUT_SECONDS", d.command_timeout,
                               lo=0.1, hi=86400),
        admin_command_timeout=_float(env, "DB_ADMIN_COMMAND_TIMEOUT_SECONDS",
                                     d.admin_command_timeout, lo=0, hi=7 * 86400) or None,
        auto_migrate=_bool(env, "MEDIA_AUTO_MIGRATE", d.auto_migrate),
    )


def _server(env: Mapping[str, str]) -> ServerSettings:
    d = ServerSettings
    level = _str(env, "LOG_LEVEL", d.log_level).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    log_format = _str(env, "LOG_FORMAT", d.log_format).lower()
    if log_format not in ("text", "json"):
        raise SettingsError(f"LOG_FORMAT must be text or json, got {log_format!r}")
    return ServerSettings(
        host=_str(env, "HOST", d.host),
        # Not 0: the OS would pick a port and nothing would tell the proxy which.
        port=_int(env, "PORT", d.port, lo=1, hi=65535),
        workers=_int(env, "MEDIA_WORKERS", default_workers(), lo=1, hi=256),
        shutdown_timeout=_float(env, "MEDIA_SHUTDOWN_TIMEOUT_SECONDS", d.shutdown_timeout,
                                lo=0, hi=3600),
        header_timeout=_float(env, "MEDIA_HEADER_TIMEOUT_SECONDS", d.header_timeout,
                              lo=0.1, hi=3600),
        send_timeout=_float(env, "MEDIA_SEND_TIMEOUT_SECONDS", d.send_timeout, lo=1, hi=86400),
        log_level=level,
        log_format=log_format,
    )


def _store(env: Mapping[str, str]) -> StoreSettings:
    d = StoreSettings
    chunk = _int(env, "MEDIA_CHUNK_BYTES", d.chunk_bytes, lo=3, hi=64 * 1024 * 1024)
    if chunk % 3:
        raise SettingsError(
            f"MEDIA_CHUNK_BYTES must be a multiple of 3 so that each chunk's base64 "
            f"stands alone, got {chunk}")
    return StoreSettings(
        chunk_bytes=chunk,
        read_ahead_chunks=_int(env, "MEDIA_READ_AHEAD_CHUNKS", d.read_ahead_chunks,
                               lo=1, hi=64),
        metadata_cache_seconds=_float(env, "MEDIA_METADATA_CACHE_SECONDS",
                                      d.metadata_cache_seconds, lo=0, hi=86400),
        cache_bytes=_int(env, "MEDIA_CACHE_BYTES", d.cache_bytes, lo=0, hi=2**40),
        max_range_chunks=_int(env, "MEDIA_MAX_RANGE_CHUNKS", d.max_range_chunks,
                              lo=1, hi=100_000),
        orphan_grace_seconds=_int(env, "MEDIA_ORPHAN_GRACE_SECONDS", d.orphan_grace_seconds,
                                  lo=0, hi=30 * 86400),
    )


def _uploads(env: Mapping[str, str]) -> UploadsSettings:
    d = UploadsSettings
    return UploadsSettings(
        max_bytes=_int(env, "MEDIA_MAX_UPLOAD_BYTES", d.max_bytes, lo=1, hi=2**62),
        idle_timeout=_float(env, "MEDIA_UPLOAD_IDLE_TIMEOUT_SECONDS", d.idle_timeout,
                            lo=1, hi=86400),
        min_rate=_int(env, "MEDIA_UPLOAD_MIN_RATE_BYTES_PER_SECOND", d.min_rate,
                      lo=0, hi=2**40),
        rate_window=_float(env, "MEDIA_UPLOAD_RATE_WINDOW_SECONDS", d.rate_window,
                           lo=1, hi=86400),
        max_concurrent=_int(env, "MEDIA_MAX_CONCURRENT_UPLOADS", d.max_concurrent,
                            lo=1, hi=100_000),
        stale_seconds=_int(env, "MEDIA_UPLOAD_STALE_SECONDS", d.stale_seconds,
                           lo=1, hi=30 * 86400),
    )


def _tus(env: Mapping[str, str]) -> TusSettings:
    d = TusSettings
    return TusSettings(
        expiry_seconds=_int(env, "MEDIA_TUS_EXPIRY_SECONDS", d.expiry_seconds,
                            lo=1, hi=30 * 86400),
        lease_seconds=_float(env, "MEDIA_TUS_LEASE_SECONDS", d.lease_seconds, lo=1, hi=86400),
        checksum_max_bytes=_int(env, "MEDIA_TUS_CHECKSUM_MAX_BYTES", d.checksum_max_bytes,
                                lo=1, hi=2**31),
        max_open_per_client=_int(env, "MEDIA_TUS_MAX_OPEN_PER_CLIENT", d.max_open_per_client,
                                 lo=1, hi=1_000_000),
    )


def _processing(env: Mapping[str, str], workers: int) -> ProcessingSettings:
    d = ProcessingSettings
    return ProcessingSettings(
        enabled=_bool(env, "MEDIA_PROCESSING", d.enabled),
        allowed_types=_allowed_types(env),
        max_image_bytes=_int(env, "MEDIA_MAX_IMAGE_BYTES", d.max_image_bytes, lo=1, hi=2**62),
        max_video_bytes=_int(env, "MEDIA_MAX_VIDEO_BYTES", d.max_video_bytes, lo=1, hi=2**62),
        max_audio_bytes=_int(env, "MEDIA_MAX_AUDIO_BYTES", d.max_audio_bytes, lo=1, hi=2**62),
        max_document_bytes=_int(env, "MEDIA_MAX_DOCUMENT_BYTES", d.max_document_bytes,
                                lo=1, hi=2**62),
        image_compress=_bool(env, "MEDIA_IMAGE_COMPRESS", d.image_compress),
        image_quality=_int(env, "MEDIA_IMAGE_QUALITY", d.image_quality, lo=1, hi=100),
        image_max_edge=_int(env, "MEDIA_IMAGE_MAX_EDGE", d.image_max_edge, lo=16, hi=65_535),
        keep_image_metadata=_bool(env, "MEDIA_KEEP_IMAGE_METADATA", d.keep_image_metadata),
        keep_video_metadata=_bool(env, "MEDIA_KEEP_VIDEO_METADATA", d.keep_video_metadata),
        max_image_pixels=_int(env, "MEDIA_MAX_IMAGE_PIXELS", d.max_image_pixels,
                              lo=1, hi=2**40),
        concurrency=_int(env, "MEDIA_PROCESS_CONCURRENCY", max(1, usable_cores() // workers),
                         lo=1, hi=256),
        timeout_seconds=_float(env, "MEDIA_PROCESSING_TIMEOUT_SECONDS", d.timeout_seconds,
                               lo=0.1, hi=86400),
        memory_bytes=_int(env, "MEDIA_PROCESSING_MEMORY_BYTES", d.memory_bytes,
                          lo=64 * 1024**2, hi=2**44),
        **_thumbnails(env),
    )


_THUMB_SIZE = re.compile(r"([1-9][0-9]{0,3})x([1-9][0-9]{0,3})-(crop|scale)")


def _thumbnail_sizes(env: Mapping[str, str], name: str,
                     default: tuple[tuple[int, int, str], ...]
                     ) -> tuple[tuple[int, int, str], ...]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip().lower() == "none":
        return ()
    sizes = []
    for part in raw.split(","):
        m = _THUMB_SIZE.fullmatch(part.strip())
        if m is None:
            raise SettingsError(f"{name}: {part.strip()!r} is not WIDTHxHEIGHT-crop or "
                                "WIDTHxHEIGHT-scale (1 to 9999 pixels)")
        size = (int(m[1]), int(m[2]), m[3])
        if size not in sizes:
            sizes.append(size)
    return tuple(sizes)


def _thumbnails(env: Mapping[str, str]) -> dict:
    d = ProcessingSettings
    sizes = _thumbnail_sizes(env, "MEDIA_THUMBNAIL_SIZES", d.thumbnail_sizes)
    if not sizes:
        raise SettingsError("MEDIA_THUMBNAIL_SIZES needs at least one size")
    eager = _thumbnail_sizes(env, "MEDIA_THUMBNAIL_EAGER",
                             tuple(s for s in d.thumbnail_eager if s in sizes))
    for w, h, method in eager:
        if (w, h, method) not in sizes:
            raise SettingsError(f"MEDIA_THUMBNAIL_EAGER: {w}x{h}-{method} is not one of "
                                "MEDIA_THUMBNAIL_SIZES")
    return dict(
        thumbnail_sizes=sizes,
        thumbnail_eager=eager,
        thumbnail_max_source_pixels=_int(env, "MEDIA_THUMBNAIL_MAX_SOURCE_PIXELS",
                                         d.thumbnail_max_source_pixels, lo=1, hi=2**40),
        thumbnail_max_animated_bytes=_int(env, "MEDIA_THUMBNAIL_MAX_ANIMATED_BYTES",
                                          d.thumbnail_max_animated_bytes, lo=0, hi=2**40),
    )


def _security(env: Mapping[str, str]) -> SecuritySettings:
    d = SecuritySettings
    return SecuritySettings(
        url_ttl_seconds=_int(env, "MEDIA_URL_TTL_SECONDS", d.url_ttl_seconds,
                             lo=10, hi=365 * 86400),
        signing_keys=_signing_keys(env),
        public_read=_bool(env, "MEDIA_PUBLIC_READ", d.public_read),
        cors_origins=_origins(env),
        audit_reads=_bool(env, "MEDIA_AUDIT_READS", d.audit_reads),
        audit_retention_days=_int(env, "MEDIA_AUDIT_RETENTION_DAYS", d.audit_retention_days,
                                  lo=1, hi=36500),
        trusted_proxies=_networks(env, "MEDIA_TRUSTED_PROXIES", ()),
        metrics_allow=_networks(env, "MEDIA_METRICS_ALLOW", LOOPBACK),
    )


def _workers(env: Mapping[str, str]) -> WorkersSettings:
    d = WorkersSettings
    heartbeat = _float(env, "MEDIA_HEARTBEAT_SECONDS", d.heartbeat_seconds, lo=0.1, hi=3600)
    dead = _float(env, "MEDIA_INSTANCE_DEAD_SECONDS", d.instance_dead_seconds, lo=1, hi=86400)
    if dead < 2 * heartbeat:
        raise SettingsError(f"MEDIA_INSTANCE_DEAD_SECONDS ({dead}) must be at least twice "
                            f"MEDIA_HEARTBEAT_SECONDS ({heartbeat}): one late beat is not death")
    return WorkersSettings(
        janitor_interval_seconds=_int(env, "MEDIA_JANITOR_INTERVAL_SECONDS",
                                      d.janitor_interval_seconds, lo=1, hi=86400),
        heartbeat_seconds=heartbeat,
        instance_dead_seconds=dead,
        retention=_retention(env),
    )


def _retention(env: Mapping[str, str]) -> tuple[RetentionRule, ...]:
    try:
        return parse_rules(env.get("MEDIA_RETENTION") or "")
    except ValueError as e:
        raise SettingsError(f"MEDIA_RETENTION: {e} (rules as video:365d,audio:730d,*:1825d)"
                            ) from None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``env`` (default: ``os.environ``); raise SettingsError."""
    env = os.environ if env is None else env
    server = _server(env)
    return Settings(
        db=_db(env),
        server=server,
        store=_store(env),
        uploads=_uploads(env),
        tus=_tus(env),
        processing=_processing(env, server.workers),
        security=_security(env),
        workers=_workers(env),
        legacy=_legacy(env),
        zapi=_zapi(env),
        import_url=_import_url(env),
        scan=_scan(env),
    )


def _scan(env: Mapping[str, str]) -> ScanSettings:
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
    return ScanSettings(clamd=clamd, fail_open=fail == "open",
                        timeout_seconds=_float(env, "MEDIA_SCAN_TIMEOUT_SECONDS",
                                               ScanSettings.timeout_seconds, lo=0.1, hi=3600))


# The application's settings, read once at start-up.
SETTINGS = web.AppKey("settings", Settings)
