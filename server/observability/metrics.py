"""Prometheus metrics, one registry per application (tests run several apps).

Under ``--workers N`` prometheus-client runs in multiprocess mode (see
runtime/processes.py): samples go to files shared by the workers, and ``render`` sums them.
"""
from __future__ import annotations

import os

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values
from prometheus_client.multiprocess import MultiProcessCollector


def _pid_read_once() -> None:
    """In multiprocess mode prometheus-client calls os.getpid(), a system call, at every
    update of every value, to notice a fork; a small GET makes five updates, so the
    check is a visible share of its CPU (docs/performance.md). The workers are
    spawned, not forked, and fork nothing that updates a metric (ffmpeg is an exec'd
    child), so each process reads its pid once, here."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        pid = os.getpid()
        values.ValueClass = values.MultiProcessValue(process_identifier=lambda: pid)


def _add_since(counter: Counter, seen: tuple[int, ...], **totals: int) -> tuple[int, ...]:
    """Add to ``counter``, by label, what the store's running totals gained since
    ``seen`` (the totals at the last scrape); the totals, to pass as ``seen`` next."""
    for (label, total), before in zip(totals.items(), seen):
        counter.labels(label).inc(total - before)
    return tuple(totals.values())


class Metrics:
    def __init__(self) -> None:
        _pid_read_once()
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "media_http_request_seconds", "Time to answer, by route and status",
            ["route", "status"], registry=self.registry)
        self.uploads = Counter("media_uploads_total", "Completed uploads",
                               ["media_type"], registry=self.registry)
        self.bytes_served = Counter("media_served_bytes_total", "Body bytes sent",
                                    registry=self.registry)
        self.reclaimed = Counter("media_reclaimed_uploads_total",
                                 "Abandoned uploads removed by the janitor",
                                 registry=self.registry)
        self.purged = Counter("media_purged_total",
                              "Media removed by MEDIA_RETENTION, by media type",
                              ["media_type"], registry=self.registry)
        self.zapi_outcomes = Counter("media_zapi_send_attempts_total",
                                     "Z-API send attempts by outcome (sent, retry, "
                                     "rate_limited, failed, unknown)", ["outcome"],
                                     registry=self.registry)
        # Every worker refreshes these from the same table: the latest value is right.
        self.stored_files = Gauge("media_stored_files", "Complete files, by media type",
                                  ["media_type"], registry=self.registry,
                                  multiprocess_mode="mostrecent")
        self.stored_bytes = Gauge("media_stored_bytes", "Bytes of complete files",
                                  ["media_type"], registry=self.registry,
                                  multiprocess_mode="mostrecent")
        self.first_byte = Histogram(
            "media_http_first_byte_seconds", "Time until the response headers go out, by route",
            ["route"], registry=self.registry)
        self.bytes_received = Counter("media_received_bytes_total",
                                      "Bytes of files stored by uploads", registry=self.registry)
        # Updated as connections open and close, so every worker's figure is current
        # (under --workers N, one sample per worker: the supervisor's split shows).
        self.connections = Gauge("media_http_connections", "Client connections open",
                                 registry=self.registry, multiprocess_mode="liveall")
        self.pool = Gauge("media_db_pool_connections",
                          "Database connections in use and idle, and requests waiting for one",
                          ["state"], registry=self.registry, multiprocess_mode="livesum")
        self.metadata_cache = Counter("media_metadata_cache_total",
                                      "Serving-path metadata lookups, by cache result",
                                      ["result"], registry=self.registry)
        self._cache_seen = (0, 0)
        self.batched_reads = Counter("media_batched_chunk_reads_total",
                                     "Chunk cache misses read together while the pool "
                                     "was busy: round trips, and the chunks they read",
                                     ["counted"], registry=self.registry)
        self._batched_seen = (0, 0)
        # Read from the database at each scrape: every instance reports the same value.
        self.outbox = Gauge("media_zapi_outbox_deliveries",
                            "Z-API deliveries not finished, by state (queued, sending)",
                            ["state"], registry=self.registry, multiprocess_mode="mostrecent")
        self.totals_due = 0.0   # monotonic time the stored_* gauges are next refreshed

    def sample_store(self, store) -> None:
        """Copy the store's live figures in: at scrape time, and every second from each
        worker (server/workers/sampling.py); never on the hot path."""
        in_use, idle, waiting = store.pool_usage()
        self.pool.labels("in_use").set(in_use)
        self.pool.labels("idle").set(idle)
        self.pool.labels("waiting").set(waiting)
        self._cache_seen = _add_since(self.metadata_cache, self._cache_seen,
                                      hit=store.cache_hits, miss=store.cache_misses)
        batched = store.batched_reads
        self._batched_seen = _add_since(self.batched_reads, self._batched_seen,
                                        queries=batched.queries, chunks=batched.chunks)

    def render(self) -> bytes:
        """The exposition text: this app's registry, or every worker's samples."""
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not shared:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=shared)
        return generate_latest(registry)


# The application's Prometheus metrics.
METRICS = web.AppKey("metrics", Metrics)
