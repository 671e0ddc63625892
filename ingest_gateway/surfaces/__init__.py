"""One module per API dialect; each only translates, to and from ``schemas.messages``.

A surface parses and validates its requests (``ingest_gateway.edge.body``,
``ingest_gateway.write.validation``), builds each canonical write with the one builder
(``ingest_gateway.write.build.new_write``, handing it everything in one call) and
hands them to the one accept path (``ingest_gateway.write.accept``), reads through
``ingest_gateway.read_model``, and answers in its document's format. Its routes go
into the one route table (``ingest_gateway.web.routing``); the documents' examples
sit in data-only ``*_examples`` modules that the OpenAPI description and the tests
share. Limits come from ``schemas.limits``.

- ``customers_api``: the Postman collection (000), ``/api/1.0``.
- ``batch_api``: events and customers, many per request, ``/api/1.0/batch``.
- ``user_events_api``: user + event objects (001), ``/api/v1/event``.
- ``event_groups_api``: event groups (002), ``/rest-api/customer-interface/v1.0``.
- ``enterprise_events_api``: events with property records (003),
  ``/rest-api/enterprise-interface/v1.0``.
- ``store_events_api``: custom customer events per store (004), ``/core/v3``.
- ``segment_api``: the Segment spec (HTTP tracking API), ``/v1``.

``common`` holds helpers the surfaces share (OpenAPI declarations, paging, sorting,
ids).
"""
