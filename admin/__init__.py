"""``ingest-admin``: configuration and operations, written straight to PostgreSQL.

- ``cli``: the command line (teams and keys, event groups, the ledger).
- ``event_groups``: event groups of the 002 API, as configuration.
- ``databases``: scratch databases for the test suite and the benchmark.
"""
