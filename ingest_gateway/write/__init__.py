"""The write path every surface's writes take.

- ``accept``: building a canonical write (``new_write``), a team's blocked
  identifiers, publish, the optional wait, the answer.
- ``validation``: the rules nothing answered 2xx may break (JSON, text, paths, and a
  message's times, names and identifiers: ``check_message``).
- ``publisher``: Kafka (records per partition, acks=all).

May import ``schemas``, ``runtime``, ``read_model`` (blocked values, outcomes) and,
from the HTTP layer, ``ApiError``, the services and the answer type; never a surface.
"""
