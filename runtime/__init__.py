"""Process plumbing shared by the gateway, the consumers and the admin CLI.

- ``settings``: the one frozen settings object, read from the environment.
- ``pg``: the connection type, and which errors mean PostgreSQL is unavailable.
- ``kafka``: the one Kafka producer every process uses (acks=all, idempotent,
  records up to ``KAFKA_MESSAGE_MAX_BYTES``).
- ``gc``: garbage-collector tuning for the long-running processes.
"""
