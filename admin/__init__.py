"""``ingest-admin``: configuration and operations, written straight to PostgreSQL and Kafka.

One job a module:

- ``cli``: the command line only: parses the arguments and dispatches to the modules below.
- ``teams``: teams and their API keys (create, list, rotate, revoke).
- ``event_groups``: event groups of the 002 API, as configuration.
- ``ledger``: the ``prune-ledger`` command (the pruning is ``consumers.ledger``).
- ``dead_letters``: replaying the dead-letter topic into the writes topic after a fix.
- ``config``: the settings in effect, and the check of the environment for deploys.
- ``errors``: ``CommandError``, the refusal every command may raise.

The package may import ``schemas``, ``runtime``, ``consumers.ledger`` and the
gateway's read-and-configure queries (``ingest_gateway.read_model``); nothing imports it
but the tests and the benchmark (which create teams and block values with it).
"""
