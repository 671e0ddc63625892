"""Consumer workers: read canonical writes from Kafka in batches and apply them to PostgreSQL.

Every polled batch goes through one chain of steps, commit last (``steps``)::

    Decode -> Apply -> SendDeadLetters -> Commit

and the apply step runs one unit of work per transaction::

    claim message ids -> record violations -> lock customers -> plan (pure) -> write (set-based SQL)

One job a module, in the order a batch meets them:

- ``worker``: the process's loop: open the clients, poll, run the chain, stop cleanly.
- ``registry``: what a consumer is: topic, group, chain of steps, dead-letter topic, limits.
- ``steps``: the step interface (``Batch`` in, ``Batch`` out) and the four steps.
- ``decode``: bytes to ``WriteMessage``; what cannot be decoded becomes a dead letter.
- ``unit_of_work``: one PostgreSQL transaction per batch, in the order above.
- ``plan``: pure policy: identity resolution and the event rules, what to read and write.
- ``rules``: the questions the rules ask of a message (a bot? which write is newer?).
- ``statements``: the SQL, set-based, one function per concern.
- ``dead_letter``: dead letters, the dead-letter topic and the dead-letter limit.
- ``faults``: what a failure means (wait, retry, blame the message) and the backoff.
- ``violations``: tracking-plan violations, recorded in the batch's transaction
  (``tracking_violations``); blocked messages are not applied.
- ``lanes``: the two lanes a worker may serve (main and overflow), each a topic and
  a consumer group of its own.
- ``ledger``: forgetting old ids of ``processed_messages``.
- ``metrics``, ``timestamps``: Prometheus metrics (served by ``runtime.health_server``), a
  cheaper ``timestamptz`` codec.
- ``supervisor``, ``exit_codes``, ``__main__``: ``ingest-consumer``, which runs and
  restarts the worker processes.

What became of each message (``applied``, ``discarded:<rule>``, ``blocked``,
``dead_letter``) is
``schemas.outcomes``. The consumers never import the gateway.
"""
