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

# Kafka log end offset minus the group's committed offset (the consumer's position until the
# first commit), per assigned partition, refreshed with the worker's heartbeat (2 s).
CONSUMER_LAG = Gauge(
    "insights_consumer_lag_messages",
    "Messages behind the log end per assigned partition (log end offset - committed offset)",
    ["topic", "partition"],
)
# Apply time minus event time of a sample of each applied batch's events: how late the
# rollups are behind the world (producer delay, broker backlog and worker time together).
EVENT_TIME_LAG = Histogram(
    "insights_event_time_lag_seconds",
    "Time from an event's own time to the store accepting its batch (sampled per batch)",
    ["topic"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400),
)
ROLLUP_OPS = Histogram(
    "insights_rollup_ops_per_batch",
    "Rollup operations one worker batch sends to the store (cells, builds, metadata updates)",
    ["topic"],
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000),
)
# The API's coderd_insights_* gauges are computed on a timer (api.coder_metrics, which also
# exports insights_coder_gauges_refreshed_timestamp_seconds once they were computed).
CODER_GAUGES_FAILURES = Counter(
    "insights_coder_gauges_refresh_failures_total",
    "Refreshes of the coderd_insights_* gauges that failed (the previous values stay)",
)
