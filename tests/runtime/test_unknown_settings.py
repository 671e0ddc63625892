"""Environment variables that look like settings but name none: found, suggested,
warned about as the gateway and the consumers start; the scripts' own variables and
secrets (``runtime.settings``)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import SecretStr

from runtime.settings import (
    PREFIXES,
    SCRIPT_VARIABLES,
    SETTING_NAMES,
    UnknownSetting,
    look_alike,
    shown,
    unknown_settings,
)
from tests.support import BIN, REPO, Process, eventually, free_port

MISSPELT = "CONSUMER_HEALTHY_AFTER_S"
WARNING = "unknown setting CONSUMER_HEALTHY_AFTER_S; did you mean CONSUMER_RESTART_HEALTHY_AFTER_S?"


def test_the_settings_the_readme_once_named_are_found_with_their_real_names() -> None:
    environ = {
        "CONSUMER_HEALTHY_AFTER_S": "60",
        "CONSUMER_START_WINDOW_S": "5",
        "CONSUMER_MAX_START_FAILURES": "3",
        "HOME": "/root",
    }
    assert [str(each) for each in unknown_settings(environ)] == [
        WARNING,
        "unknown setting CONSUMER_MAX_START_FAILURES;"
        " did you mean CONSUMER_RESTART_MAX_START_FAILURES?",
        "unknown setting CONSUMER_START_WINDOW_S; did you mean CONSUMER_RESTART_START_WINDOW_S?",
    ]


def test_suggestions_come_from_the_variables_family() -> None:
    environ = {"gateway_worker": "2", "MAX_BODY_SIZE": "1", "DB_HOST": "db", "MAX_JOBS": "4"}
    assert unknown_settings(environ) == [
        UnknownSetting("DB_HOST", None),  # not TRUSTED_HOSTS: another family
        UnknownSetting("MAX_BODY_SIZE", "MAX_BODY_BYTES"),
        UnknownSetting("MAX_JOBS", None),
        UnknownSetting("gateway_worker", "GATEWAY_WORKERS"),
    ]
    assert str(UnknownSetting("MAX_JOBS", None)) == (
        "unknown setting MAX_JOBS (ignored; see docs/configuration.md)"
    )


def test_settings_script_variables_and_others_are_not_unknown() -> None:
    environ = dict.fromkeys(SETTING_NAMES | SCRIPT_VARIABLES, "1")
    environ |= {"consumer_group": "g", "PATH": "/bin", "WAIT": "1", "KAFKAESQUE": "1"}
    assert unknown_settings(environ) == []


def test_prefixes_are_the_words_that_begin_several_settings() -> None:
    assert {"CONSUMER_", "GATEWAY_", "PUBLISH_", "PRODUCER_", "KAFKA_", "MAX_", "DB_"} <= PREFIXES
    assert "WAIT_" not in PREFIXES and "EMAIL_" not in PREFIXES  # one setting each
    assert not SETTING_NAMES & SCRIPT_VARIABLES


# Where the scripts read the environment: ${NAME:-default} (or ${NAME-...}, ...) in
# shell, os.environ.get("NAME") / os.environ["NAME"] / os.getenv("NAME") in Python.
_SHELL_READ = re.compile(r"\$\{([A-Z][A-Z0-9_]*):?[-=?+]")
_PYTHON_READ = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]*)["']""")


def _script_files() -> list[Path]:
    return [
        *REPO.glob("deploy/**/*.sh"),
        REPO / "Makefile",
        *(p for p in REPO.glob(".ci/*") if p.is_file()),
        *REPO.glob("bench/*.py"),
        *REPO.glob("tests/**/*.py"),
    ]


def test_no_variable_the_scripts_read_is_warned_about() -> None:
    read = {
        name: path
        for path in _script_files()
        for pattern in (_SHELL_READ, _PYTHON_READ)
        for name in pattern.findall(path.read_text(errors="replace"))
    }
    assert {"KAFKA_PORT", "PG_PORT", "KAFKA_HEAP_OPTS", "DEMO_API_KEY"} <= read.keys()
    warned = {name: str(path.relative_to(REPO)) for name, path in read.items() if look_alike(name)}
    assert warned == {}, "add them to SCRIPT_VARIABLES in runtime/settings.py"


def test_secrets_are_masked() -> None:
    url = "postgresql://ingest:p@ss/w0rd@db.example:5432,db2.example/ingest?sslmode=verify-full"
    assert shown("database_url", url) == (
        "postgresql://ingest:********@db.example:5432,db2.example/ingest?sslmode=verify-full"
    )
    assert shown("database_url", "postgresql://db.example/ingest?user=i&password=pw&x=1") == (
        "postgresql://db.example/ingest?user=i&password=********&x=1"
    )
    assert shown("database_url", "postgresql://ingest@127.0.0.1:15432/ingest") == (
        "postgresql://ingest@127.0.0.1:15432/ingest"
    )
    for name in ("api_key", "sasl_password", "client_secret", "token"):
        assert shown(name, "plain-value") == "********", name
    assert shown("api_key", "") == ""
    assert shown("anything", SecretStr("hidden")) == "********"
    assert shown("keep_alive_timeout_s", 5) == "5"
    assert shown("publish_coalesce", True) == "true"


def _start(name: str, command: str, tmp_path: Path) -> Process:
    # Services nobody answers on: the warning must come before any connection.
    closed = free_port()
    env = {
        MISSPELT: "60",
        "KAFKA_PORT": "19092",  # read by deploy/kafka/kafka.sh: not warned about
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed}",
        "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{closed}/nothing",
        "GATEWAY_PORT": str(free_port()),
        "METRICS_PORT": "0",
    }
    return Process(name, [str(BIN / command)], env, tmp_path)


async def _log_once_it_shows(process: Process, *texts: str) -> str:
    """The process's log once it holds every one of ``texts``; the process stopped."""

    async def logged() -> str | None:
        log = process.log_path.read_text(errors="replace")
        return log if all(text in log for text in texts) else None

    try:
        return await eventually(logged, timeout=30)
    finally:
        process.stop()


async def test_the_gateway_warns_as_it_starts(tmp_path: Path) -> None:
    log = await _log_once_it_shows(_start("gateway", "ingest-gateway", tmp_path), WARNING)
    assert "WARNING gateway runtime.settings: " + WARNING in log
    assert "KAFKA_PORT" not in log


async def test_the_consumer_supervisor_warns_as_it_starts(tmp_path: Path) -> None:
    consumer = _start("consumer", "ingest-consumer", tmp_path)
    # Once the worker tried Kafka, it started too: the warning is the supervisor's only.
    log = await _log_once_it_shows(consumer, WARNING, "consumer-0 consumers.faults")
    assert "WARNING supervisor runtime.settings: " + WARNING in log
    assert log.count(WARNING) == 1
    assert "KAFKA_PORT" not in log
