"""The HTTP gateway: authenticates, validates and publishes writes to Kafka; reads from PostgreSQL.

The walk of a request, package by package:

- ``__main__`` / ``edge``: uvicorn with request deadlines, then the edge's layers
  (paths, the body limit and gzip) and the reading of bodies.
- ``app``: stacks the layers, makes the process's services, builds the route table
  from every surface.
- ``web``: the HTTP layer: routing, authentication, CORS, error answers, typed
  services, OpenAPI, health.
- ``surfaces/``: one module per API dialect, translating only.
- ``write``: the one builder of a canonical write, validation, blocked identifiers,
  quotas, runtime controls, tracking plans, lanes, publish (the Kafka sink), wait,
  answer.
- ``read_model/``: every SQL the gateway runs.
- ``metrics``: the process's Prometheus metrics, fed from the request path and the
  write path (served on ``GATEWAY_METRICS_PORT``).
"""
