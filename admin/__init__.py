"""``ingest-admin``: configuration and operations, written straight to PostgreSQL and Kafka.

One job a module:

- ``cli``: the command line only: parses the arguments and dispatches to the modules below.
- ``teams``: teams and their API keys (create, list, rotate, revoke), and the
  origins a team's write key may send from.
- ``blocked_identifiers``: a team's blocked identifier values.
- ``event_groups``: event groups of the 002 API, as configuration.
- ``quotas``: a team's quota (``set-quota``).
- ``controls``: a team's runtime controls (``control``, ``list-controls``).
- ``tracking_plans``: tracking plans (upload, show, diff, activate, roll back), their
  violations, and the replay of blocked messages.
- ``ledger``: the ``prune-ledger`` command (the pruning is ``consumers.ledger``).
- ``topics``: ``create-topics``, the topics the pipeline needs.
- ``dead_letters``: the dead-letter topic's letters, and replaying them into the
  writes topics after a fix.
- ``inspect_letters``: ``list-dead-letters`` and ``show-dead-letter``.
- ``purge_letters``: ``purge-dead-letters``, deleting dead letters from Kafka for good.
- ``erase``: ``erase-customer``, a customer erased as the API's delete does.
- ``lag``: a consumer group's lag per partition.
- ``topic_reader``, ``terminal``: reading topics between offsets, and what people
  type and read at the repair tools.
- ``config``: the settings in effect, and the check of the environment for deploys.
- ``errors``: ``CommandError``, the refusal every command may raise.

The package may import ``schemas``, ``runtime``, from the consumers ``ledger``,
``lanes`` and the dead-letter reason classes (``consumers.metrics``), the gateway's
read-and-configure queries (``ingest_gateway.read_model``) and, for
``erase-customer`` alone, the gateway's write builder, record maker and ``ApiError``
(``ingest_gateway.write.build``, ``ingest_gateway.write.publisher``,
``ingest_gateway.web.errors``); nothing imports it but the tests and the benchmark
(which create teams and topics and block values with it).
"""
