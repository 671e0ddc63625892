"""Consumer workers: read canonical writes from Kafka in batches and apply them to PostgreSQL.

The chain for every batch is ``decode -> plan -> apply -> commit``:

- ``worker``: the Kafka loop (poll a batch, hand it on, commit offsets last).
- ``decode``: bytes to ``WriteMessage``; what cannot be decoded goes to the dead-letter topic.
- ``plan``: pure Python. Given the current owners of the batch's identifiers, decides
  which customers to create, merge, update and delete and which events to keep.
- ``apply``: one PostgreSQL transaction per batch: lock, read, plan, write set-based.
- ``rules``: the event rules (bots, confirmation dedup, email-open window).
"""
