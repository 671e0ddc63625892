"""The read model: every SQL statement the gateway runs, team-scoped and parameterised.

- ``customers``: customers by identifier, lists, existing identifiers.
- ``events``: events and their property records (003), events of a customer (001).
- ``event_groups``: event groups and types (002); their configuration is the one
  thing written here directly rather than through Kafka (team configuration, not
  customer traffic: docs/api.md, "002: event groups").
- ``outcomes``: the consumers' ledger, for clients that wait for their write (the
  wait itself: ``wait_for_outcomes``).
- ``teams``: the team of an API key, a team's name.
- ``paging``: one sorted page with its total.

Surfaces reach PostgreSQL only through these modules.
"""
