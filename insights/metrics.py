"""Prometheus metrics of the worker and the API (labels are low-cardinality by design)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("insights_events_total", "Events accepted by the worker", ["topic"])
MESSAGES = Counter("insights_messages_total", "Kafka messages consumed", ["topic"])
REJECTED = Counter(
    "insights_events_rejected_total", "Events sent to the dead-letter topic", ["topic", "reason"]
)
BATCH_SECONDS = Histogram(
    "insights_batch_seconds", "Decode + apply time of one worker batch", ["topic"]
)
STORE_RETRIES = Counter("insights_store_retries_total", "Failed store writes retried", ["topic"])
STORE_DEAD_LETTERED = Counter(
    "insights_store_batches_dead_lettered_total",
    "Worker batches the store refused with a non-transient error (their events went to the "
    "dead-letter topic); reason is the exception type",
    ["topic", "reason"],
)
ASSIGNED = Gauge("insights_assigned_partitions", "Partitions assigned to this worker")
HTTP_REQUESTS = Counter("insights_http_requests_total", "API requests", ["route", "status"])
HTTP_SECONDS = Histogram("insights_http_request_seconds", "API request latency", ["route"])
