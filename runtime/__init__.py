"""Process plumbing shared by the gateway, the consumers and the admin CLI.

- ``settings``: the one frozen settings object, read from the environment, and the
  warning about variables that look like settings but name none.
- ``settings_doc``: ``docs/configuration.md``, generated from the settings.
- ``pg``: the connection type, and which errors mean PostgreSQL is unavailable.
- ``kafka``: how every Kafka client connects (brokers, TLS, SASL), and the one
  producer every process uses (acks=all, idempotent, records up to
  ``KAFKA_MESSAGE_MAX_BYTES``).
- ``health_server``: a process's operator port (``/metrics``, ``/healthz``,
  ``/readyz``), for the consumer workers, their supervisor and the gateway's workers.
- ``logs``: how every process logs (text, or JSON with ``LOG_FORMAT=json``), and the
  request and message a line is about.
- ``tasks``: background tasks: a step repeated on a timer, and stopping a task.
- ``gc``: garbage-collector tuning for the long-running processes.
"""
