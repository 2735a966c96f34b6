"""Operator settings, read from ``INSIGHTS_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from pydantic import Field
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
    fetch_max_wait_ms: int = Field(
        500, ge=10, le=10_000, description="longest idle fetch of the worker (embedded: 100)"
    )
    broker_session_timeout_s: float = Field(
        30.0, gt=0, description="consumer group session timeout (embedded broker: 6 s)"
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

    def topic(self, kind: str) -> str:
        return self.topic_prefix + kind

    @property
    def dead_letter_topic(self) -> str:
        return self.topic_prefix + "dead_letter"

    @property
    def all_topics(self) -> list[str]:
        return [self.topic(k) for k in TOPIC_KINDS] + [self.dead_letter_topic]
