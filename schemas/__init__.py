"""Contracts shared by the gateway and the consumers.

- ``config``: the settings both sides read from the environment.
- ``topics``: Kafka topic names and the partition key of a write.
- ``messages``: the canonical write message every API surface translates to.
- ``identity``: normalisation of customer identifiers (email, phone, ...).
- ``migrations/``: the versioned SQL of the PostgreSQL store, applied by ``migrate``.
"""
