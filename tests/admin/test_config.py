"""``ingest-admin config [--check]``, run as a process: the settings in effect with
secrets masked, and the check deploy pipelines run on the environment."""

from __future__ import annotations

import subprocess

from runtime.settings import SCRIPT_VARIABLES, SETTING_NAMES
from tests.support import BIN, free_port

SUGGESTED = (
    "unknown setting CONSUMER_HEALTHY_AFTER_S; did you mean CONSUMER_RESTART_HEALTHY_AFTER_S?"
)


def admin(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``ingest-admin`` with only ``env`` (and PATH) in its environment."""
    return subprocess.run(
        [str(BIN / "ingest-admin"), *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=60,
    )


def test_config_prints_every_setting_in_effect_with_secrets_masked() -> None:
    url = "postgresql://ingest:hunter2@db.example:5432/ingest"
    result = admin("config", DATABASE_URL=url, max_body_bytes="2048")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    printed = dict(
        line.split("=", 1) for line in result.stdout.splitlines() if not line.startswith("#")
    )
    assert printed.keys() == SETTING_NAMES
    assert "hunter2" not in result.stdout
    assert printed["DATABASE_URL"] == "postgresql://ingest:********@db.example:5432/ingest"
    assert printed["MAX_BODY_BYTES"] == "2048"
    assert printed["PUBLISH_COALESCE"] == "true"
    assert printed["PRODUCER_COMPRESSION"] == "  # unset"
    assert "# Consumers: supervision" in result.stdout.splitlines()


def test_config_warns_about_a_misspelt_setting_and_check_fails_on_it() -> None:
    shown = admin("config", CONSUMER_HEALTHY_AFTER_S="60")
    assert shown.returncode == 0
    assert shown.stderr == f"ingest-admin: WARNING: {SUGGESTED}\n"
    # The misspelling changed nothing.
    assert "CONSUMER_RESTART_HEALTHY_AFTER_S=30.0" in shown.stdout.splitlines()

    checked = admin("config", "--check", CONSUMER_HEALTHY_AFTER_S="60", MAX_JOBS="4")
    assert checked.returncode == 1
    assert checked.stdout == ""
    assert checked.stderr.splitlines() == [
        "ingest-admin: config --check: the environment does not fit the settings:",
        f"  {SUGGESTED}",
        "  unknown setting MAX_JOBS (ignored; see docs/configuration.md)",
    ]


def test_check_fails_on_a_value_out_of_bounds() -> None:
    checked = admin("config", "--check", DEAD_LETTER_MAX_RATIO="1.5")
    assert checked.returncode == 1
    assert "  DEAD_LETTER_MAX_RATIO: Input should be less than or equal to 1 (got '1.5')" in (
        checked.stderr.splitlines()
    )


def test_settings_and_the_scripts_variables_pass_the_check_unwarned() -> None:
    env = dict.fromkeys(SCRIPT_VARIABLES, "1") | {"KAFKA_PORT": "19092", "CONSUMER_GROUP": "g"}
    checked = admin("config", "--check", **env)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == ""
    assert checked.stdout.startswith("config --check: ok")


def test_every_command_warns_as_it_starts() -> None:
    # Nothing answers on the port: the command fails, after the warning.
    nowhere = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    result = admin("list-teams", DATABASE_URL=nowhere, CONSUMER_HEALTHY_AFTER_S="60")
    assert result.returncode != 0
    assert result.stderr.startswith(f"ingest-admin: WARNING: {SUGGESTED}\n")
