"""Process plumbing shared by the gateway, the consumers and the admin CLI.

- ``settings``: the one frozen settings object, read from the environment, and the
  warning about variables that look like settings but name none.
- ``settings_doc``: ``docs/configuration.md``, generated from the settings.
- ``pg``: the connection type, and which errors mean PostgreSQL is unavailable.
- ``kafka``: the one Kafka producer every process uses (acks=all, idempotent,
  records up to ``KAFKA_MESSAGE_MAX_BYTES``).
- ``gc``: garbage-collector tuning for the long-running processes.
"""
