"""Contracts shared by the gateway and the consumers.

- ``topics``: the partition key of a write, and which lanes a write goes to (a
  delete: every one); the topics' names are settings (``runtime.settings``).
- ``messages``: the canonical write message every API surface translates to.
- ``outcomes``: what became of a message (applied, discarded:<rule>, blocked,
  dead_letter), as the consumers record it and the gateway reads it.
- ``identity``: normalisation of customer identifiers (email, phone, ...).
- ``limits``: what can be stored (integer, time and text ranges), for both sides.
- ``times``: the one parser of the times clients send, and the clock-skew rule.
- ``json_schemas``: JSON Schemas of the values the contract holds (the OpenAPI
  description's shared parts).
- ``tracking_plans``: a tracking plan's document, its compiled check of a write, the
  import of a Segment Protocols export.
- ``violations``: what a message carries of its tracking-plan check (the gateway's
  verdict, read by the consumers).
- ``keys``: how API keys are stored (digests), between the admin CLI and the gateway.
- ``migrations/``: the versioned SQL of the PostgreSQL store.
- ``migrate``: ``ingest-migrate``, which applies ``migrations/`` in order (the one
  module here that imports ``runtime``: ``DATABASE_URL`` from its settings).
"""
