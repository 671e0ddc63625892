"""The HTTP gateway: authenticates, validates and publishes writes to Kafka; reads from PostgreSQL.

The walk of a request, module by module:

- ``__main__`` / ``server``: uvicorn, with the request deadlines of slow clients.
- ``app``: the edge's layers (``postman_paths``, the body limit in ``body``), the
  process's services (``deps``) and the one route table (``routing``).
- ``routing``: matches the route, authenticates (``auth``), parses typed query
  parameters, calls the surface's endpoint; ``errors`` renders what it raises.
- ``surfaces/``: one module per API dialect, translating to ``schemas.messages``.
- ``accept``: the one write path: publish (``publisher``), wait if asked, answer.
- ``read_model/``: every SQL the gateway runs.
- ``openapi``, ``health``: the description of the table, liveness and readiness.
"""
