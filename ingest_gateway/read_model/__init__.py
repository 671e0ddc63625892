"""Team-scoped, parameterised SQL used by the API modules (and ``ingest-admin``).

Reads answer from PostgreSQL in one or two statements. Event-group configuration
is the one thing written here directly rather than through Kafka: it is team
configuration, not customer traffic (see README "Event groups").
"""
