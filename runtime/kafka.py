"""How every Kafka client of the project connects, and the producer they all use.

One place turns the settings into a client's connection options (brokers, TLS,
SASL): the gateway's producer, the consumers and their dead-letter producer,
``ingest-admin`` (topics, dead letters, erase, lag) and the bench all call
``connection_options``, so a cluster that needs TLS and a password works for every
one of them or for none.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka import AIOKafkaProducer

from runtime.settings import Settings


def connection_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of any aiokafka client (producer, consumer, admin) that
    reach the brokers as the settings say, with TLS verification on unless
    ``KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM=none`` turns off the host check.

    Raises ``OSError`` or ``ssl.SSLError`` for a certificate file that cannot be read.
    """
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": protocol,
    }
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = tls_context(settings)
    if protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def consumer_options(settings: Settings) -> dict[str, Any]:
    """``connection_options`` for a consumer worker's clients (its consumer and its
    dead-letter producer), which give up a request after ``CONSUMER_REQUEST_TIMEOUT_MS``.

    Only theirs: the gateway's producer is bounded by ``PUBLISH_TIMEOUT_S`` already,
    and ``ingest-admin``'s clients serve a person who can stop them.
    """
    return {
        **connection_options(settings),
        "request_timeout_ms": settings.consumer_request_timeout_ms,
    }


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Verifies the brokers' certificates against ``KAFKA_SSL_CA_LOCATION`` (else the
    system's authorities) and presents this client's certificate when one is set."""
    context = ssl.create_default_context(cafile=settings.kafka_ssl_ca_location or None)
    context.check_hostname = settings.kafka_ssl_endpoint_identification_algorithm == "https"
    if settings.kafka_ssl_certificate_location:
        context.load_cert_chain(
            settings.kafka_ssl_certificate_location,
            settings.kafka_ssl_key_location or None,
            settings.kafka_ssl_key_password.get_secret_value() or None,
        )
    return context


def acked_producer(settings: Settings, client_id: str, **options: Any) -> AIOKafkaProducer:
    """A producer whose acknowledged sends are on every in-sync replica, never twice.

    aiokafka's defaults are not ours (acks=1 without idempotence); the record size
    is the one KAFKA_MESSAGE_MAX_BYTES the broker and topics are set to.
    """
    return AIOKafkaProducer(
        **connection_options(settings),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        max_request_size=settings.kafka_message_max_bytes,
        **options,
    )


def described(settings: Settings) -> str:
    """Where and how the clients connect, for log lines: never the password.

    aiokafka logs why a connection failed just before (``SaslAuthenticationFailed``,
    ``CERTIFICATE_VERIFY_FAILED``); this says which settings to look at.
    """
    protocol = settings.kafka_security_protocol
    details = []
    if protocol.startswith("SASL_"):
        details.append(f"{settings.kafka_sasl_mechanism} as {settings.kafka_sasl_username!r}")
    if protocol in ("SSL", "SASL_SSL"):
        details.append(f"CA {settings.kafka_ssl_ca_location or 'of the system'}")
        if settings.kafka_ssl_certificate_location:
            details.append(f"client certificate {settings.kafka_ssl_certificate_location}")
    how = f" ({', '.join(details)})" if details else ""
    return f"{settings.kafka_bootstrap_servers} over {protocol}{how}"
