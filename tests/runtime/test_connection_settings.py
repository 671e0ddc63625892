"""How the settings reach Kafka's clients (``runtime.kafka.connection_options``) and
where secrets may come from (``NAME_FILE``); the secured services themselves are
tests/pipeline/test_secured.py."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from runtime.kafka import connection_options, described
from runtime.settings import Settings, shown, unknown_settings


def test_plaintext_is_the_default_and_names_only_the_brokers() -> None:
    options = connection_options(Settings(kafka_bootstrap_servers="k1:9092,k2:9092"))
    assert options == {"bootstrap_servers": "k1:9092,k2:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_verifies_the_broker_and_its_host_unless_told_not_to() -> None:
    sasl = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-256",
        "kafka_sasl_username": "app",
        "kafka_sasl_password": "pw",
    }
    options = connection_options(Settings(**sasl))  # type: ignore[arg-type]
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("app", "pw")

    unchecked = Settings(**sasl, kafka_ssl_endpoint_identification_algorithm="none")  # type: ignore[arg-type]
    context = connection_options(unchecked)["ssl_context"]
    assert context.verify_mode is ssl.CERT_REQUIRED and not context.check_hostname
    assert "pw" not in described(unchecked) and "'app'" in described(unchecked)


def test_incomplete_security_settings_stop_the_process_at_start_without_echoing_values() -> None:
    with pytest.raises(ValidationError, match="needs KAFKA_SASL_USERNAME") as refused:
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_password="hunter2")
    assert "hunter2" not in str(refused.value)
    with pytest.raises(ValidationError, match="needs KAFKA_SSL_CERTIFICATE_LOCATION"):
        Settings(kafka_ssl_key_location="/k.pem")
    with pytest.raises(ValidationError):
        Settings(kafka_security_protocol="SASL")


def test_a_setting_may_come_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD_FILE", str(secret))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("database_url_file", str(secret))  # names match in any case
    settings = Settings()
    assert settings.kafka_sasl_password.get_secret_value() == "s3cret"
    assert settings.database_url == "s3cret"
    assert shown("kafka_sasl_password", settings.kafka_sasl_password) == "********"
    assert unknown_settings({"KAFKA_SASL_PASSWORD_FILE": "x"}) == []


def test_a_setting_and_its_file_together_or_an_unreadable_file_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)
    monkeypatch.setenv("KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="KAFKA_SASL_PASSWORD_FILE: cannot read"):
        Settings()
    (tmp_path / "missing").write_text("x")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "y")
    with pytest.raises(ValueError, match="both KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE"):
        Settings()
