"""Settings, read once from environment variables (prefix-free, see README "Configuration")."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """One frozen, validated settings object shared by every process."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    # Services
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    database_url: str = "postgresql://ingest@127.0.0.1:15432/ingest"

    # Topics
    writes_topic: str = "ingest.writes"
    dead_letter_topic: str = "ingest.writes.dlq"

    # Kafka's size limit for one record, set to the same value on the broker
    # (message.max.bytes), the topics (max.message.bytes) and the producers
    # (max_request_size); the gateway refuses with 413 a write whose message would
    # not fit (README "Sizes").
    kafka_message_max_bytes: int = Field(1024 * 1024, ge=64 * 1024)

    # Gateway
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    gateway_workers: int = Field(1, ge=1)
    public_base_url: str = ""  # used in nextPageUrl; derived from the request when empty
    # When PUBLIC_BASE_URL is empty, the Host headers the Segment settings may name as
    # apiHost: comma-separated host[:port] (no port: any); empty, loopback names only.
    # Any other Host gets 421 there (ingest_gateway/hosts.py).
    trusted_hosts: str = Field(
        "",
        pattern=r"^\s*((?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?\s*(,\s*|$))*$",
    )
    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    max_json_depth: int = Field(32, ge=2)
    max_batch_items: int = Field(5000, ge=1)
    max_item_bytes: int = Field(32 * 1024, ge=256)  # per item of POST /api/1.0/batch
    publish_timeout_s: float = Field(10.0, gt=0)
    # How often the gateway asks whether a broker answers; while none does, writes
    # get 503 at once (and /readyz says so) instead of waiting PUBLISH_TIMEOUT_S.
    broker_check_interval_s: float = Field(1.0, gt=0)
    # aiokafka's own batching delay. 0: the publisher already groups messages into
    # records (PUBLISH_LINGER_MS), and records pile up while a request is in flight;
    # 5 ms here cost every request 5 ms and single events 40% of their throughput.
    producer_linger_ms: int = Field(0, ge=0)
    producer_max_batch_bytes: int = Field(1024 * 1024, ge=16384)
    # Bytes of messages per Kafka record (one record carries many messages of one
    # partition); well below the broker's message.max.bytes (1 MiB by default).
    producer_record_max_bytes: int = Field(256 * 1024, ge=1024)
    # Concurrent requests share records: their messages wait this long to be grouped.
    publish_coalesce: bool = True
    publish_linger_ms: float = Field(1.0, ge=0)
    producer_compression: str | None = None
    db_pool_min: int = Field(1, ge=0)
    db_pool_max: int = Field(10, ge=1)
    # Connect and statement timeout of the gateway's queries: a PostgreSQL that does
    # not answer gets the client a 503 after this long.
    db_timeout_s: float = Field(10.0, gt=0)
    wait_timeout_s: float = Field(5.0, gt=0)  # bound on "Prefer: return=representation"
    # Slow and abusive clients (ingest_gateway/server.py). A request's headers must
    # arrive within header_timeout_s (of the connection for its first request, of its
    # first byte after that) and its body within body_timeout_s of the headers, or the
    # answer is 408 and the connection is closed. keep_alive_timeout_s: idle time
    # allowed between requests (uvicorn's, whole seconds). max_connections: per
    # gateway process; a request on a connection beyond it is answered 503.
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(30.0, gt=0)
    keep_alive_timeout_s: int = Field(5, ge=1)
    max_connections: int = Field(1000, ge=1)

    # Consumers
    consumer_group: str = "ingest-writers"
    consumer_max_records: int = Field(2000, ge=1)
    consumer_poll_timeout_ms: int = Field(200, ge=1)
    # The broker holds a fetch until this many bytes are ready or the wait ran out:
    # fewer, larger batches (one transaction each) when writes trickle in one by one.
    consumer_fetch_min_bytes: int = Field(64 * 1024, ge=1)
    consumer_fetch_max_wait_ms: int = Field(50, ge=0)
    consumer_processes: int = Field(1, ge=1)
    # The supervisor of those processes (consumers/supervisor.py): a child that exits
    # is restarted after a delay that doubles from the first to the max, and starts
    # over once the child stayed up HEALTHY_AFTER_S; after MAX_START_FAILURES deaths
    # in a row, each within START_WINDOW_S of starting, the supervisor gives up
    # (exit 1). A child asked to stop is killed after CONSUMER_STOP_TIMEOUT_S.
    consumer_restart_backoff_s: float = Field(0.5, gt=0)
    consumer_restart_backoff_max_s: float = Field(10.0, gt=0)
    consumer_restart_healthy_after_s: float = Field(30.0, gt=0)
    consumer_restart_start_window_s: float = Field(5.0, gt=0)
    consumer_restart_max_start_failures: int = Field(5, ge=1)
    consumer_stop_timeout_s: float = Field(60.0, gt=0)
    max_transaction_retries: int = Field(8, ge=1)
    # Connect and statement timeout of the consumers' PostgreSQL connections: beyond
    # it a batch's connection counts as lost (a silent one would hold it forever),
    # and the batch is retried on a fresh one. A batch takes well under a second.
    consumer_statement_timeout_s: float = Field(30.0, gt=0)
    email_open_window_s: int = Field(20 * 60, ge=0)
    # Applied message ids older than this are forgotten (consumers/ledger.py); keep it at
    # least the writes topic's retention. 0: never (prune with ingest-admin instead).
    ledger_retention_days: int = Field(7, ge=0)
    ledger_prune_interval_s: float = Field(3600.0, gt=0)
    # Longest wait between retries while PostgreSQL or Kafka is unavailable (the
    # consumers retry for as long as it takes).
    retry_backoff_max_s: float = Field(5.0, gt=0)
    # A consumer stops (exit code 3, nothing committed) when more than this share of
    # the last DEAD_LETTER_WINDOW messages went to the dead-letter topic.
    dead_letter_max_ratio: float = Field(0.9, gt=0, le=1)
    dead_letter_window: int = Field(1000, ge=1)

    # Metrics
    metrics_port: int = 0  # consumer Prometheus port; 0 disables


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
