"""Operator settings, read from ``INSIGHTS_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aggregators.model import TOPIC_KINDS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INSIGHTS_", extra="ignore")

    kafka_bootstrap: str = Field("", description="host:port[,host:port]; empty = embedded broker")
    redis_url: str = Field("", description="redis://...; empty = embedded server")
    topic_prefix: str = "insights."
    topic_partitions: int = Field(4, ge=1, description="partitions of topics this service creates")
    app_id: str = "coder-insights-streams"

    batch_messages: int = Field(200, ge=1, description="messages per worker batch (take)")
    batch_within_s: float = Field(0.05, gt=0, description="flush a partial batch after this")
    max_future_s: float = Field(300.0, ge=0, description="refuse events this far in the future")
    redis_retry_max_s: float = Field(5.0, gt=0, description="cap of the worker's retry backoff")
    retention_days: int | None = Field(
        None, ge=1, description="drop whole days older than this many days; unset keeps all"
    )
    dedupe_horizon_days: float = Field(
        7.0,
        gt=0,
        description="latency sample guards live this long after their last write (redelivery)",
    )
    fetch_max_wait_ms: int = Field(
        500, ge=10, le=10_000, description="longest idle fetch of the worker (embedded: 100)"
    )
    # A dead worker's partitions move to the others once the broker expires its session,
    # so failover takes about the session timeout plus a heartbeat (plus, on the embedded
    # broker, a join held for half the session). 6 s is the least Kafka accepts by default
    # (group.min.session.timeout.ms); README "Failover" has the trade-off.
    broker_session_timeout_s: float = Field(
        6.0,
        ge=1,
        le=1800,
        description="consumer group session timeout: a silent worker is dead after this",
    )
    broker_heartbeat_interval_s: float = Field(
        1.0, gt=0, description="consumer group heartbeat; at most a third of the session timeout"
    )

    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, ge=0, le=65535)
    api_tokens: str = Field(
        "", description="TOKEN (deployment) or TOKEN=uuid|uuid, comma separated"
    )
    api_token_file: str = Field("", description="file with one token spec per line")
    store_timeout_s: float = Field(2.0, gt=0, description="deadline of one store read")
    read_staleness_ms: int = Field(
        250, ge=0, le=1000, description="a changed day is refolded at most once per this"
    )
    readiness_max_age_s: float = Field(30.0, gt=0)
    readiness_broker_timeout_s: float = Field(
        1.0, gt=0, le=10, description="bound of the API's broker check (/readyz)"
    )
    metrics_token: SecretStr = Field(
        SecretStr(""), description="when set, /metrics needs Authorization: Bearer <token>"
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: json unless stderr is a terminal"
    )

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> Settings:
        # Kafka's rule: several heartbeats must fit in one session, or a single late one
        # makes the group think a live worker died.
        if self.broker_heartbeat_interval_s * 3 > self.broker_session_timeout_s:
            raise ValueError(
                "broker_heartbeat_interval_s must be at most a third of broker_session_timeout_s"
            )
        return self

    def topic(self, kind: str) -> str:
        return self.topic_prefix + kind

    @property
    def dead_letter_topic(self) -> str:
        return self.topic_prefix + "dead_letter"

    @property
    def all_topics(self) -> list[str]:
        return [self.topic(k) for k in TOPIC_KINDS] + [self.dead_letter_topic]
