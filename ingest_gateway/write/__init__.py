"""The write path every surface's writes take, in the order they take it.

- ``build``: the one builder of a canonical ``WriteMessage`` (``new_write``), with
  the identifiers a surface names (``identifiers_or_400``) and the end user's agent.
- ``validation``: the rules nothing answered 2xx may break (JSON, text, paths, and a
  message's times, names and identifiers: ``check_message``).
- ``accept``: the one path of built writes: the checks below, publish, the optional
  wait, the answer.
- ``blocked_values``: a team's blocked identifier values, read, cached and enforced
  on every write ``accept`` publishes.
- ``tracking``: each team's active tracking plan, read every
  ``TRACKING_PLAN_REFRESH_S`` and checked on every write (and the ``?validate=true``
  dry run).
- ``controls``: each team's runtime controls (drop, dead-letter, skip identity,
  overflow), read every ``QUOTA_REFRESH_S``.
- ``quotas``: each team's events per second and burst, leased from one token bucket
  in PostgreSQL (429 beyond it).
- ``lanes``: which topic a write is published to, the main lane or the overflow.
- ``sink``: where writes go (``Sink.publish``) and the domain errors it raises
  (``MessageTooLarge``, ``BrokerUnavailable``).
- ``publisher``: the Kafka sink (records per partition, acks=all).

May import ``schemas``, ``runtime``, ``read_model`` (blocked values, outcomes), the
gateway's ``metrics`` and, from the HTTP layer, ``ApiError``, the services, the key
cache's lifetime, the query flags (``web.query``) and the answer types
(``web.responses``); never a surface. The sink, the publisher, the quotas, the
controls and the lanes import nothing of ``web``.
"""
