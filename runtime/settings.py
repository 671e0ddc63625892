"""Settings, read once from environment variables, and the check of those variables.

Every process reads its configuration here: ``get_settings()`` builds one frozen,
validated ``Settings`` from environment variables named as its fields in upper case
(no prefix; names are matched case-insensitively). The fields come in sections, one
class each, whose docstrings and the fields' docstrings are the reference
``docs/configuration.md`` is generated from (``runtime/settings_doc.py``, ``make docs``).

Unknown variables are ignored by pydantic, so a misspelt one would change nothing and
say nothing: every process calls ``warn_unknown_settings()`` as it starts, which logs
each variable that looks like one of ours (see ``look_alike``) but names no setting,
with the closest setting's name. ``shown`` spells a value for people, secrets masked
(``ingest-admin config``, the generated reference).

Imports pydantic and pydantic-settings only; imported by every package.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

log = logging.getLogger(__name__)


class _Section(BaseModel):
    # The docstring under each field is its description (FieldInfo.description), the
    # text of docs/configuration.md. Pydantic reads it from this file's source, which
    # every install keeps (an editable one, or the wheel's .py files).
    model_config = ConfigDict(use_attribute_docstrings=True)


class Services(_Section):
    """Services

    Where Kafka and PostgreSQL are. ``make services`` starts local ones (or uses
    those already named here) and writes both variables to ``.local/services.env``.
    """

    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    """Kafka brokers to connect to first: comma-separated ``host:port``. When set
    before ``make run`` or ``make test``, no local broker is started."""
    database_url: str = "postgresql://ingest@127.0.0.1:15432/ingest"
    """PostgreSQL, as a libpq URL (a password in it is masked wherever it is shown).
    When set before ``make run`` or ``make test``, no local PostgreSQL is started."""


class KafkaSecurity(_Section):
    """Kafka: security

    How every client (the gateway, the consumers and their dead-letter producer,
    ``ingest-admin``, the bench) connects to the brokers; ``runtime/kafka.py`` turns
    these into the clients' options. Named after the Kafka client properties a
    provider's page lists (``security.protocol`` is ``KAFKA_SECURITY_PROTOCOL``).
    Secrets may come from a file instead: ``KAFKA_SASL_PASSWORD_FILE=/run/secrets/x``
    (any setting can, as ``NAME_FILE``; how Kubernetes and Docker mount secrets).
    docs/connect.md has the values for Confluent Cloud, Amazon MSK, Aiven and Redpanda.
    """

    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """Kafka's ``security.protocol``: ``SSL`` and ``SASL_SSL`` encrypt (and verify the
    brokers' certificates); ``SASL_*`` authenticate with a user name and password."""
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    """Kafka's ``sasl.mechanism``, with ``SASL_SSL`` or ``SASL_PLAINTEXT``."""
    kafka_sasl_username: str = ""
    """Kafka's ``sasl.username``."""
    kafka_sasl_password: SecretStr = SecretStr("")
    """Kafka's ``sasl.password`` (or ``KAFKA_SASL_PASSWORD_FILE``); never logged or shown."""
    kafka_ssl_ca_location: str = ""
    """Kafka's ``ssl.ca.location``: a PEM file of the certificate authorities that sign the
    brokers' certificates; empty: the system's trusted ones."""
    kafka_ssl_certificate_location: str = ""
    """Kafka's ``ssl.certificate.location``: this client's certificate (PEM), for brokers that
    authenticate clients by certificate (mutual TLS)."""
    kafka_ssl_key_location: str = ""
    """Kafka's ``ssl.key.location``: the private key of that certificate (PEM)."""
    kafka_ssl_key_password: SecretStr = SecretStr("")
    """Kafka's ``ssl.key.password``: the key file's password, if it is encrypted."""
    kafka_ssl_endpoint_identification_algorithm: Literal["https", "none"] = "https"
    """Kafka's ``ssl.endpoint.identification.algorithm``: ``https`` checks that a broker's
    certificate names the host connected to; ``none`` turns that off (the
    certificate is still verified against the authorities)."""

    @model_validator(mode="after")
    def _complete(self) -> Self:
        """Refuse at start what could only fail later, at every connection."""
        if self.kafka_security_protocol.startswith("SASL_") and not self.kafka_sasl_username:
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} "
                "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if self.kafka_ssl_key_location and not self.kafka_ssl_certificate_location:
            raise ValueError("KAFKA_SSL_KEY_LOCATION needs KAFKA_SSL_CERTIFICATE_LOCATION")
        return self


class Topics(_Section):
    """Topics and records"""

    writes_topic: str = "ingest.writes"
    """The topic the gateway publishes writes to and the consumers apply."""
    writes_overflow_topic: str = "ingest.writes.overflow"
    """The overflow lane: the writes of a team or customer beyond its fair share
    (``LANE_*``), or of a team under the ``overflow`` control, applied by consumers of
    their own (``CONSUMER_OVERFLOW_PROCESSES``)."""
    dead_letter_topic: str = "ingest.writes.dlq"
    """Where consumers put the messages they cannot apply, with the reason
    (``ingest-admin replay-dead-letters`` sends them back)."""
    kafka_message_max_bytes: int = Field(1024 * 1024, ge=64 * 1024)
    """Kafka's size limit for one record, set to the same value on the broker
    (``message.max.bytes``), the topics (``max.message.bytes``) and the producers
    (``max_request_size``); the gateway refuses with 413 a write whose message would
    not fit."""
    kafka_replication_factor: int = Field(1, ge=1)
    """Copies of each partition of the topics ``ingest-admin create-topics`` makes
    (``make run`` runs it). Production: 3 (docs/operations.md)."""
    kafka_min_insync_replicas: int = Field(1, ge=1)
    """The topics' ``min.insync.replicas``: a write is acknowledged only once this
    many copies have it, else the gateway answers 503. Production: 2, with 3 copies."""


class Http(_Section):
    """Gateway: HTTP

    The ASGI server (``ingest-gateway``) and its defences against slow and abusive
    clients (``ingest_gateway/edge/server.py``).
    """

    gateway_host: str = "127.0.0.1"
    """Address the gateway listens on."""
    gateway_port: int = 8080
    """Port the gateway listens on."""
    gateway_workers: int = Field(1, ge=1)
    """Gateway processes (uvicorn workers)."""
    public_base_url: str = ""
    """Base of ``nextPageUrl`` links and of the ``apiHost`` analytics.js is told
    (``https`` when it names no scheme); empty: the request's ``Host``, when
    ``TRUSTED_HOSTS`` trusts it."""
    trusted_hosts: str = Field(
        "",
        pattern=r"^\s*((?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?\s*(,\s*|$))*$",
    )
    """When ``PUBLIC_BASE_URL`` is empty, the ``Host`` headers the gateway may name in
    an answer (the Segment settings' ``apiHost``, the customer list's
    ``nextPageUrl``): comma-separated ``host[:port]`` (no port: any). Any other
    ``Host`` gets 421 there (``ingest_gateway/web/hosts.py``), so a cache in front cannot
    be poisoned; empty trusts ``localhost``, ``127.0.0.1`` and ``[::1]`` only."""
    header_timeout_s: float = Field(10.0, gt=0)
    """A request's headers must all arrive within this time (of the connection for
    its first request, of its first byte after that), however steadily they trickle,
    or the answer is 408 and the connection is closed."""
    body_timeout_s: float = Field(30.0, gt=0)
    """A request's whole body must arrive within this time of its headers (408,
    closed); time the gateway itself stops reading does not count. Raise it for
    large bodies over slow links: 5 MiB in 30 s is 175 KB/s."""
    keep_alive_timeout_s: int = Field(5, ge=1)
    """Idle time allowed between requests on a connection (uvicorn's, whole
    seconds); behind a load balancer, longer than the balancer's idle timeout."""
    max_connections: int = Field(1000, ge=1)
    """Open connections (and requests in flight) per gateway process: a request on
    one more is answered 503 and its connection closed. Keep it below the process's
    open-file limit (``ulimit -n``)."""


class RequestLimits(_Section):
    """Gateway: request limits"""

    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    """Largest request body, counted on the stream (413 beyond)."""
    max_json_depth: int = Field(32, ge=2)
    """Deepest JSON nesting of a body or item (400 beyond)."""
    max_batch_items: int = Field(5000, ge=1)
    """Items (or customers) per batch request (413 beyond)."""
    max_item_bytes: int = Field(32 * 1024, ge=256)
    """Bytes per item of ``POST /api/1.0/batch``."""


class Publishing(_Section):
    """Gateway: publishing to Kafka"""

    publish_timeout_s: float = Field(10.0, gt=0)
    """How long a write waits for Kafka's acknowledgement before the answer is 503."""
    broker_check_interval_s: float = Field(1.0, gt=0)
    """How often the gateway asks whether a broker answers; while none does, writes
    get 503 at once (and ``/readyz`` says so) instead of waiting
    ``PUBLISH_TIMEOUT_S``."""
    publish_coalesce: bool = True
    """Concurrent requests share Kafka records: their messages wait
    ``PUBLISH_LINGER_MS`` to be grouped."""
    publish_linger_ms: float = Field(1.0, ge=0)
    """How long a message waits for others to share its record."""
    producer_linger_ms: int = Field(0, ge=0)
    """aiokafka's own batching delay. 0: the publisher already groups messages into
    records (``PUBLISH_LINGER_MS``), and records pile up while a request is in
    flight; 5 ms here cost every request 5 ms and single events 40% of their
    throughput."""
    producer_max_batch_bytes: int = Field(1024 * 1024, ge=16384)
    """aiokafka's batch size per partition."""
    producer_record_max_bytes: int = Field(256 * 1024, ge=1024)
    """Bytes of messages per Kafka record (one record carries many messages of one
    partition); well below ``KAFKA_MESSAGE_MAX_BYTES``."""
    producer_compression: str | None = None
    """Compression of the producer's batches (``lz4``, ``gzip``, ``zstd``,
    ``snappy``); unset: none."""
    wait_timeout_s: float = Field(5.0, gt=0)
    """Longest wait for the consumers to apply a write whose request asked for the
    result (``Prefer: return=representation``, ``?wait=true``)."""


class Quotas(_Section):
    """Gateway: quotas

    A team's events per second and burst (``ingest-admin set-quota``); beyond them a
    write is answered 429 with ``Retry-After`` and nothing is published. All gateway
    processes share each team's bucket in PostgreSQL (``ingest_gateway/write/quotas.py``).
    """

    team_events_per_second: float = Field(0.0, ge=0)
    """The quota of a team that has none of its own; 0: none."""
    team_burst: int = Field(0, ge=0)
    """The burst of a team that has none of its own; 0: one second of its rate."""
    quota_refresh_s: float = Field(2.0, gt=0)
    """How often a gateway process reads the teams' quotas: a change takes effect
    within this time."""
    quota_lease_s: float = Field(0.05, gt=0, le=1)
    """A gateway process takes tokens from a team's shared bucket this many seconds
    of its rate at a time (one PostgreSQL round trip each), and gives back what it has
    not used after a second; smaller: closer to the quota, more round trips."""


class Lanes(_Section):
    """Gateway: lanes

    Writes beyond these rates go to the overflow lane (``WRITES_OVERFLOW_TOPIC``)
    instead of the main one, so that a flooding team, or a customer id shared by a
    fleet of devices, cannot delay everyone else's writes
    (``ingest_gateway/write/lanes.py``). Counted per gateway process, in windows of a
    second; a team or customer over its rate stays in the overflow lane for the next
    window too. The store ends the same whichever lane a write took.
    """

    lane_team_events_per_second: float = Field(2000.0, ge=0)
    """A team's events per second through one gateway process beyond which its writes
    go to the overflow lane; 0: never for this reason."""
    lane_customer_events_per_second: float = Field(100.0, ge=0)
    """Events per second of one customer key (a team's first identifier of a write)
    through one gateway process beyond which its writes go to the overflow lane: far
    beyond any person's rate (Segment caps a profile at 25); 0: never for this reason."""


class GatewayDatabase(_Section):
    """Gateway: PostgreSQL

    The gateway's own connections, for reads and key lookups.
    """

    db_pool_min: int = Field(1, ge=0)
    """Connections the pool keeps open."""
    db_pool_max: int = Field(10, ge=1)
    """Most connections the pool opens."""
    db_timeout_s: float = Field(10.0, gt=0)
    """Connect and statement timeout of the gateway's queries: a PostgreSQL that does
    not answer gets the client a 503 after this long."""


# The consumer group's session timeout, aiokafka's default, which consumers/worker.py
# passes explicitly: CONSUMER_REQUEST_TIMEOUT_MS is bounded by it. (Not a setting: the
# broker's group.min/max.session.timeout.ms bound it too, and nothing asked to move it.)
SESSION_TIMEOUT_MS = 10_000


class Consumers(_Section):
    """Consumers

    The workers of ``ingest-consumer``: Kafka batches applied to PostgreSQL.
    """

    consumer_group: str = "ingest-writers"
    """Kafka consumer group of the workers."""
    consumer_processes: int = Field(1, ge=1)
    """Worker processes ``ingest-consumer`` starts (``--processes`` overrides it)."""
    consumer_overflow_processes: int = Field(1, ge=0)
    """Worker processes ``ingest-consumer`` starts for the overflow lane, in a group
    of their own (``CONSUMER_GROUP`` + ``.overflow``); 0: none (run them elsewhere)."""
    consumer_overflow_nice: int = Field(10, ge=0, le=19)
    """The overflow lane's workers run at this CPU niceness: on a busy host the main
    lane's workers are scheduled first."""
    consumer_overflow_share: float = Field(0.25, gt=0, le=1)
    """The share of its time an overflow-lane worker spends applying: after a batch
    that took t seconds it rests t × (1/share − 1). Niceness reaches only the worker's
    own process, not the PostgreSQL backend and the broker doing most of its work:
    this bounds what a flood's backlog takes from the main lane on a shared host.
    1: no rest (give the lane hosts of its own instead)."""
    consumer_overflow_max_records: int = Field(500, ge=1)
    """Records per poll, and messages per transaction, of an overflow-lane worker:
    fewer than the main lane's, so that each of its transactions holds the host for
    less time at once."""
    consumer_max_records: int = Field(2000, ge=1)
    """Records per poll, and messages per transaction."""
    consumer_poll_timeout_ms: int = Field(200, ge=1)
    """Longest wait for a batch before looking again."""
    consumer_fetch_min_bytes: int = Field(64 * 1024, ge=1)
    """The broker holds a fetch until this many bytes are ready or
    ``CONSUMER_FETCH_MAX_WAIT_MS`` ran out: fewer, larger batches (one transaction
    each) when writes trickle in one by one."""
    consumer_fetch_max_wait_ms: int = Field(50, ge=0)
    """Longest time the broker holds a fetch for ``CONSUMER_FETCH_MIN_BYTES``; less
    than ``CONSUMER_REQUEST_TIMEOUT_MS`` (checked at every process's start, as all
    read the same settings)."""
    consumer_request_timeout_ms: int = Field(40_000, gt=SESSION_TIMEOUT_MS, le=300_000)
    """How long a worker's Kafka clients (its consumer and its dead-letter producer)
    wait for a broker to answer one request before they drop the connection and try
    again: a connection gone silent (a broker cut off, a middlebox dropping it) holds
    the worker this long. aiokafka's default. Above the group's session timeout (10 s),
    because the broker holds a JoinGroup request up to it during a rebalance: shorter,
    the worker would give up and join again while the group waits for a member
    (Kafka's Java consumer 0.10 to 1.1 refused less); and above
    ``CONSUMER_FETCH_MAX_WAIT_MS``, which the broker holds a fetch for."""
    consumer_statement_timeout_s: float = Field(30.0, gt=0)
    """Connect and statement timeout of the consumers' PostgreSQL connections: beyond
    it a batch's connection counts as lost (a silent one would hold it forever), and
    the batch is retried on a fresh one. A batch takes well under a second."""
    max_transaction_retries: int = Field(8, ge=1)
    """Attempts at a batch that aborts (deadlock, serialisation failure) before its
    culprit is isolated; infrastructure faults are retried without limit."""
    retry_backoff_max_s: float = Field(5.0, gt=0)
    """Longest wait between retries while PostgreSQL or Kafka is unavailable (the
    consumers retry for as long as it takes)."""
    dead_letter_max_ratio: float = Field(0.9, gt=0, le=1)
    """A consumer stops (exit code 3, nothing committed) when more than this share
    of the last ``DEAD_LETTER_WINDOW`` messages went to the dead-letter topic."""
    dead_letter_window: int = Field(1000, ge=1)
    """Messages over which ``DEAD_LETTER_MAX_RATIO`` is counted."""
    email_open_window_s: int = Field(20 * 60, ge=0)
    """The email-open rule: an email open within this time (event time) of a kept
    one of the same customer is discarded."""
    ledger_retention_days: int = Field(7, ge=0)
    """Applied message ids older than this are forgotten (``consumers/ledger.py``);
    keep it at least the writes topic's retention. 0: never (prune with
    ``ingest-admin prune-ledger`` instead)."""
    ledger_prune_interval_s: float = Field(3600.0, gt=0)
    """How often a consumer forgets the message ids older than
    ``LEDGER_RETENTION_DAYS``."""

    @model_validator(mode="after")
    def _fetch_within_request(self) -> Self:
        """A fetch the broker may hold longer than a request may take would time out
        every time the topic is quiet."""
        if self.consumer_fetch_max_wait_ms >= self.consumer_request_timeout_ms:
            raise ValueError(
                f"CONSUMER_FETCH_MAX_WAIT_MS ({self.consumer_fetch_max_wait_ms}) must be less"
                f" than CONSUMER_REQUEST_TIMEOUT_MS ({self.consumer_request_timeout_ms}): the"
                " broker holds a fetch that long, and the request would time out"
            )
        return self


class Supervision(_Section):
    """Consumers: supervision

    ``ingest-consumer`` runs its workers as child processes
    (``consumers/supervisor.py``) and restarts one that exits.
    """

    consumer_restart_backoff_s: float = Field(0.5, gt=0)
    """Delay before restarting a worker that exited; it doubles with each restart in
    a row, up to ``CONSUMER_RESTART_BACKOFF_MAX_S``."""
    consumer_restart_backoff_max_s: float = Field(10.0, gt=0)
    """Longest delay before restarting a worker."""
    consumer_restart_healthy_after_s: float = Field(30.0, gt=0)
    """A worker that stayed up this long starts the delay over."""
    consumer_restart_start_window_s: float = Field(5.0, gt=0)
    """A worker that dies within this time of starting counts as a failed start."""
    consumer_restart_max_start_failures: int = Field(5, ge=1)
    """After this many failed starts in a row the supervisor gives up (exit 1): bad
    settings or a port taken need a person, not a restart."""
    consumer_stop_timeout_s: float = Field(60.0, gt=0)
    """A worker asked to stop (it finishes and commits its batch) is killed after
    this long; its batch is delivered again."""


class Logging(_Section):
    """Logging"""

    log_format: Literal["text", "json"] = "text"
    """``text``: lines for people; ``json``: one JSON object per line, with the
    request id, team and message ids of the request or write a line is about
    (``runtime/logs.py``)."""
    access_log: bool = False
    """The gateway logs a line per request answered: method, route template (not the
    path, which may hold an email), status, milliseconds, request id."""


class Metrics(_Section):
    """Metrics"""

    metrics_port: int = Field(0, ge=0, le=65535)
    """Port of the first consumer worker's Prometheus metrics (the next workers use
    the next ports), with its ``/healthz`` and ``/readyz``; 0: none."""
    supervisor_metrics_port: int = Field(0, ge=0, le=65535)
    """Port of the consumers' supervisor's metrics (its workers' restarts); 0: none."""
    gateway_metrics_port: int = Field(0, ge=0, le=65535)
    """Port of the gateway's Prometheus metrics, apart from the API's port so that it
    need not be public. With several ``GATEWAY_WORKERS`` every worker listens on it
    and any answers with the sum of all (prometheus_client's multiprocess mode);
    0: none (and no cost per request)."""


class TrackingPlans(_Section):
    """Tracking plans

    Each team's active tracking plan (``ingest-admin plan-activate``,
    ``docs/tracking-plans.md``), checked by the gateway on every write.
    """

    tracking_plan_refresh_s: float = Field(1.0, gt=0)
    """How often a gateway process reads which plan version each team has active: a
    new version takes effect on every process within this time."""


class Settings(
    BaseSettings,
    Services,
    KafkaSecurity,
    Topics,
    Http,
    RequestLimits,
    Publishing,
    Quotas,
    Lanes,
    GatewayDatabase,
    Consumers,
    Supervision,
    Logging,
    Metrics,
    TrackingPlans,
):
    """One frozen, validated settings object shared by every process."""

    # extra="ignore": the environment holds much else; warn_unknown_settings() names
    # the variables that look like ours. hide_input_in_errors: an error names the
    # setting, never the values (a password among them).
    model_config = SettingsConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, FileSettingsSource(settings_cls))


FILE_SUFFIX = "_FILE"


class FileSettingsSource(PydanticBaseSettingsSource):
    """Settings named by ``NAME_FILE``: the file's text (one trailing newline removed)
    is the value of ``NAME``, the way Kubernetes and Docker hand secrets to a process.

    Naming both ``NAME`` and ``NAME_FILE`` is refused: which one wins would be a guess.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        environ = {name.upper(): value for name, value in os.environ.items()}
        values: dict[str, Any] = {}
        for field_name in self.settings_cls.model_fields:
            variable = field_name.upper()
            path = environ.get(variable + FILE_SUFFIX)
            if path is None:
                continue
            if variable in environ:
                raise ValueError(f"both {variable} and {variable}{FILE_SUFFIX} are set: keep one")
            try:
                with open(path, encoding="utf-8") as file:
                    text = file.read()
            except OSError as exc:
                raise ValueError(
                    f"{variable}{FILE_SUFFIX}: cannot read {path}: {exc.strerror}"
                ) from None
            values[field_name] = text.removesuffix("\n").removesuffix("\r")
        return values


# The sections in the order of the reference; each field belongs to one.
SECTIONS: tuple[type[BaseModel], ...] = Settings.__bases__[1:]


def section_text(section: type[BaseModel]) -> tuple[str, str]:
    """A section's title (its docstring's first line) and introduction (the rest)."""
    title, _, intro = inspect.cleandoc(section.__doc__ or "").partition("\n")
    return title, intro.strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


# What the environment calls each setting, and the variables naming a file that holds one.
SETTING_NAMES = frozenset(name.upper() for name in Settings.model_fields)
FILE_NAMES = frozenset(name + FILE_SUFFIX for name in SETTING_NAMES)

# A variable looks like one of ours when it begins with a word that begins at least
# two settings (CONSUMER_, GATEWAY_, KAFKA_, MAX_, PUBLISH_, ...): a family that a
# misspelling most likely keeps. A word of a single setting (WAIT_, EMAIL_) is too
# common in other programs' variables to count.
PREFIXES = frozenset(
    word + "_"
    for word, count in Counter(name.split("_")[0] for name in SETTING_NAMES).items()
    if count >= 2
)

# Variables the project's own scripts read, which are no setting: never warned about.
# Keep this list in step with the scripts: tests/runtime/test_unknown_settings.py finds
# the variables deploy/, the Makefile, .ci/, bench/ and tests/ read, and fails on any
# that would be warned about.
SCRIPT_VARIABLES = frozenset(
    {
        # deploy/kafka/kafka.sh
        "KAFKA_BROKERS",
        "KAFKA_DIR",
        "KAFKA_PORT",
        "KAFKA_CONTROLLER_PORT",
        "KAFKA_INTERNAL_PORT",
        "KAFKA_ADVERTISED_PORTS",
        "KAFKA_LIBS_DIR",
        "KAFKA_HEAP_OPTS",
        "KAFKA_START_TIMEOUT",
        "KAFKA_STOP_TIMEOUT",
        "KAFKA_NUM_PARTITIONS",
        "MAVEN_REPO_LOCAL",
        # deploy/postgres/pg.sh (and tests/pipeline/fault_support.py)
        "PG_DIR",
        "PG_PORT",
        "PG_BIN",
        # deploy/services.sh, deploy/run.sh
        "INGEST_TOPICS",
        "DEMO_API_KEY",
        # consumers/supervisor.py: how a worker finds its supervisor
        "INGEST_SUPERVISOR_FD",
        # bench/
        "BENCH_TRACE",
        "NAIVE_DATABASE_URL",
        "NAIVE_TEAM_ID",
    }
)


def look_alike(variable: str) -> bool:
    """Whether an environment variable looks like a setting but names none."""
    name = variable.upper()
    return (
        name.startswith(tuple(PREFIXES))
        and name not in SETTING_NAMES
        and name not in FILE_NAMES
        and name not in SCRIPT_VARIABLES
    )


@dataclass(frozen=True)
class UnknownSetting:
    """An environment variable that looks like a setting, and the closest one."""

    variable: str
    suggestion: str | None

    def __str__(self) -> str:
        if self.suggestion is None:
            return f"unknown setting {self.variable} (ignored; see docs/configuration.md)"
        return f"unknown setting {self.variable}; did you mean {self.suggestion}?"


def unknown_settings(environ: Mapping[str, str] | None = None) -> list[UnknownSetting]:
    """The variables of ``environ`` (default: this process's) that look like settings
    but name none, in name order, each with the closest setting of its family if any."""
    env = os.environ if environ is None else environ
    found = []
    for variable in sorted(v for v in env if look_alike(v)):
        # Suggested from its own family: DB_HOST is no misspelt TRUSTED_HOSTS.
        family = variable.upper().split("_")[0] + "_"
        kin = sorted(name for name in SETTING_NAMES if name.startswith(family))
        close = difflib.get_close_matches(variable.upper(), kin, n=1)
        found.append(UnknownSetting(variable, close[0] if close else None))
    return found


def warn_unknown_settings(environ: Mapping[str, str] | None = None) -> list[UnknownSetting]:
    """Log a warning for each of ``unknown_settings(environ)``; returns them.

    Every process calls it as it starts, before reading the settings.
    """
    unknown = unknown_settings(environ)
    for each in unknown:
        log.warning("%s", each)
    return unknown


MASK = "********"
# Words that make a field's whole value a secret.
_SECRET_WORDS = frozenset({"key", "password", "passwd", "secret", "token", "credentials"})
# The password of a URL's user (up to the last '@': a password may hold one), and
# query parameters such as libpq's ?password=...
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*:)[^\s]*@")
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&][^=&\s]*(?:key|password|passwd|secret|token)[^=&\s]*=)[^&\s]*", re.I
)


def is_secret(name: str) -> bool:
    """Whether the field ``name`` holds a secret by its name (``api_key``, ``sasl_password``)."""
    return not _SECRET_WORDS.isdisjoint(name.lower().split("_"))


def shown(name: str, value: object) -> str:
    """``value`` of the field ``name`` as its variable would spell it, secrets masked:
    the whole value of a secret field, any password in a URL."""
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        value = value.get_secret_value() and MASK
    elif is_secret(name) and value != "":
        return MASK
    text = str(value).lower() if isinstance(value, bool) else str(value)
    text = _URL_PASSWORD.sub(rf"\g<head>{MASK}@", text)
    return _QUERY_SECRET.sub(rf"\g<head>{MASK}", text)
