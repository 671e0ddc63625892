"""Contracts shared by the gateway and the consumers.

- ``topics``: Kafka topic names, the partition key of a write, and which lanes a
  write goes to (a delete: every one).
- ``messages``: the canonical write message every API surface translates to.
- ``outcomes``: what became of a message (applied, discarded:<rule>, dead_letter), as
  the consumers record it and the gateway reads it.
- ``identity``: normalisation of customer identifiers (email, phone, ...).
- ``limits``: what can be stored (integer, time and text ranges), for both sides.
- ``keys``: how API keys are stored (digests), between the admin CLI and the gateway.
- ``migrations/``: the versioned SQL of the PostgreSQL store, applied by ``migrate``.
"""
