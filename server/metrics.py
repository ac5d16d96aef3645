"""Prometheus metrics, one registry per application (tests run several apps)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
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
        self.zapi_outcomes = Counter("media_zapi_send_attempts_total",
                                     "Z-API send attempts by outcome (sent, retry, "
                                     "rate_limited, failed, unknown)", ["outcome"],
                                     registry=self.registry)
        self.stored_files = Gauge("media_stored_files", "Complete files, by media type",
                                  ["media_type"], registry=self.registry)
        self.stored_bytes = Gauge("media_stored_bytes", "Bytes of complete files",
                                  ["media_type"], registry=self.registry)
        self.totals_due = 0.0   # monotonic time the stored_* gauges are next refreshed
