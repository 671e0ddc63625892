"""The write path every surface's writes take, in the order they take it.

- ``build``: the one builder of a canonical ``WriteMessage`` (``new_write``), with
  the identifiers a surface names (``identifiers_or_400``) and the end user's agent.
- ``validation``: the rules nothing answered 2xx may break (JSON, text, paths, and a
  message's times, names and identifiers: ``check_message``).
- ``accept``: the one path of built writes: publish, the optional wait, the answer.
- ``blocked_values``: a team's blocked identifier values, read, cached and enforced
  on every write ``accept`` publishes.
- ``sink``: where writes go (``Sink.publish``) and the domain errors it raises
  (``MessageTooLarge``, ``BrokerUnavailable``).
- ``publisher``: the Kafka sink (records per partition, acks=all).

May import ``schemas``, ``runtime``, ``read_model`` (blocked values, outcomes) and,
from the HTTP layer, ``ApiError``, the services and the answer type; never a surface,
and the sink and the publisher nothing of HTTP.
"""
