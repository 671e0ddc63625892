"""The HTTP gateway: authenticates, validates and publishes writes to Kafka; reads from PostgreSQL.

``app.create_app`` wires it together; each API document the gateway serves is one
module under ``routes/`` that translates requests to canonical ``WriteMessage``s.
"""
