"""Operator settings, read from ``INSIGHTS_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aggregators.model import TOPIC_KINDS

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


DAY_BUCKETS_SINGLE = 1  # one server: one tag per day costs nothing and reads least
DAY_BUCKETS_CLUSTER = 16  # a cluster: every shard takes part of a day even with 3-8 shards
KAFKA_GROUP_TIMING = (6.0, 1.0)  # session, heartbeat (s): Kafka's floor for the session
# The embedded broker has no floor, and 3 s / 0.5 s took a dead worker's partitions over in
# ~5.5 s instead of ~9-10 s, but with 3-4 s sessions a worker sometimes stayed idle after
# rejoining a broker restarted empty (2-3 of 6-8 runs; none in 11 at 6 s): same as Kafka.
EMBEDDED_GROUP_TIMING = KAFKA_GROUP_TIMING


class Settings(BaseSettings):
    # Validation errors never echo the input: it holds passwords (the Redis URL, SASL).
    model_config = SettingsConfigDict(
        env_prefix="INSIGHTS_", extra="ignore", hide_input_in_errors=True
    )

    kafka_bootstrap: str = Field("", description="host:port[,host:port]; empty = embedded broker")
    redis_url: str = Field(
        "",
        description="redis[s]://[user:password@]host:port/db, or a cluster's seeds as"
        " redis[s]+cluster://[user:password@]host:port,host:port; empty = embedded server",
    )
    # A day's rollups are split by user into this many hash tags ({d<day>:<bucket>}), so a
    # cluster spreads even today's writes over its shards. Recorded per generation on its
    # first write; a different value is refused at start and changes only by a rebuild.
    redis_day_buckets: int | None = Field(
        None,
        ge=1,
        le=256,
        description="buckets per UTC day; unset: 1 on one Redis, 16 on a cluster",
    )
    # TLS of rediss:// URLs (insights.redis_client); the files are PEM.
    redis_tls_ca_file: str = Field("", description="CA bundle; empty = the system's CAs")
    redis_tls_cert_file: str = Field("", description="client certificate (mutual TLS)")
    redis_tls_key_file: str = Field("", description="its private key, unless in the cert file")
    redis_tls_verify: bool = Field(
        True, description="verify the server's certificate and host name"
    )
    # Kafka security (insights.kafka_client builds every client's options from these).
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: KafkaSaslMechanism = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_ca_file: str = Field("", description="CA bundle; empty = the system's CAs")
    kafka_ssl_cert_file: str = Field("", description="client certificate (mutual TLS)")
    kafka_ssl_key_file: str = Field("", description="its private key, unless in the cert file")
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
    # broker, a join held for half the session). Unset: 6 s / 1 s, the least Kafka accepts
    # by default (group.min.session.timeout.ms), on either broker (``group_timing``). README
    # "Failover" has the trade-off.
    broker_session_timeout_s: float | None = Field(
        None,
        ge=1,
        le=1800,
        description="consumer group session timeout: a silent worker is dead after this",
    )
    broker_heartbeat_interval_s: float | None = Field(
        None, gt=0, description="consumer group heartbeat; at most a third of the session timeout"
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
    api_cache_mb: int = Field(
        64, ge=1, description="approximate memory of the API's read caches (frames, reports)"
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
    coder_metrics_refresh_s: float = Field(
        60.0, ge=0, description="recompute the coderd_insights_* gauges this often; 0: off"
    )
    worker_metrics_port: int | None = Field(
        None, ge=0, le=65535, description="serve a worker's /metrics on this port; unset: off"
    )
    worker_metrics_host: str = Field("127.0.0.1", description="listen address of that endpoint")

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Settings:
        """Options the chosen protocol would ignore are refused: they were meant to apply."""
        protocol = self.kafka_security_protocol
        sasl = protocol.startswith("SASL_")
        tls = protocol in ("SSL", "SASL_SSL")
        password = self.kafka_sasl_password.get_secret_value()
        if sasl and not (self.kafka_sasl_username and password):
            raise ValueError(
                f"INSIGHTS_KAFKA_SECURITY_PROTOCOL={protocol} needs INSIGHTS_KAFKA_SASL_USERNAME"
                " and INSIGHTS_KAFKA_SASL_PASSWORD"
            )
        if not sasl and (self.kafka_sasl_username or password):
            raise ValueError(
                "INSIGHTS_KAFKA_SASL_USERNAME/PASSWORD are set but"
                f" INSIGHTS_KAFKA_SECURITY_PROTOCOL={protocol} does not use SASL"
                " (SASL_PLAINTEXT or SASL_SSL)"
            )
        if not tls and (
            self.kafka_ssl_ca_file or self.kafka_ssl_cert_file or self.kafka_ssl_key_file
        ):
            raise ValueError(
                "INSIGHTS_KAFKA_SSL_* files are set but"
                f" INSIGHTS_KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS (SSL or SASL_SSL)"
            )
        if self.kafka_ssl_key_file and not self.kafka_ssl_cert_file:
            raise ValueError("INSIGHTS_KAFKA_SSL_KEY_FILE needs INSIGHTS_KAFKA_SSL_CERT_FILE")
        if self.redis_tls_key_file and not self.redis_tls_cert_file:
            raise ValueError("INSIGHTS_REDIS_TLS_KEY_FILE needs INSIGHTS_REDIS_TLS_CERT_FILE")
        return self

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> Settings:
        # Kafka's rule: several heartbeats must fit in one session, or a single late one
        # makes the group think a live worker died.
        for embedded in (False, True):
            session, heartbeat = self.group_timing(embedded)
            if heartbeat * 3 > session:
                raise ValueError(
                    "broker_heartbeat_interval_s must be at most a third of "
                    "broker_session_timeout_s"
                )
        return self

    def group_timing(self, embedded_broker: bool) -> tuple[float, float]:
        """(session timeout, heartbeat interval) in seconds: the settings, or the broker's
        defaults where unset (a heartbeat defaults to a sixth of the session)."""
        default = EMBEDDED_GROUP_TIMING if embedded_broker else KAFKA_GROUP_TIMING
        session = self.broker_session_timeout_s or default[0]
        heartbeat = self.broker_heartbeat_interval_s
        if heartbeat is None:
            heartbeat = default[1] if self.broker_session_timeout_s is None else session / 6
        return session, heartbeat

    @property
    def redis_cluster(self) -> bool:
        return self.redis_url.split("://", 1)[0].lower() in ("redis+cluster", "rediss+cluster")

    @property
    def day_buckets(self) -> int:
        """``redis_day_buckets``, or the default for the kind of Redis the URL names."""
        if self.redis_day_buckets is not None:
            return self.redis_day_buckets
        return DAY_BUCKETS_CLUSTER if self.redis_cluster else DAY_BUCKETS_SINGLE

    def topic(self, kind: str) -> str:
        return self.topic_prefix + kind

    @property
    def dead_letter_topic(self) -> str:
        return self.topic_prefix + "dead_letter"

    @property
    def all_topics(self) -> list[str]:
        return [self.topic(k) for k in TOPIC_KINDS] + [self.dead_letter_topic]
