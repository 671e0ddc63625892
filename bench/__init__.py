"""The write-path benchmark (``make bench``), and what the tests borrow from it.

``make bench`` runs three programs:

- ``__main__`` (``python -m bench``): the write path against its ceilings and a
  baseline, with ``ceilings`` (the same messages straight into Kafka, the same
  batches straight into PostgreSQL), ``naive_app`` (the baseline: a minimal FastAPI
  app writing each request to PostgreSQL), ``loadgen`` (load-generator processes,
  over ``http``, a minimal keep-alive client), ``monitor`` (the group's progress and
  lag, CPU per component), ``procs`` (the pipeline's processes and their CPU time),
  ``workload`` and ``writes`` (what is sent: request templates and canonical writes)
  and ``report`` (JSON, a Markdown table, PNG plots);
- ``bounded_work``: the worst bodies against legitimate ones of the same size;
- ``noisy``: three quiet teams beside a noisy one (issue #21).

And, run by hand (docs/benchmark.md): ``instructions`` (one kind of request through
the ASGI app, for an instruction counter), ``tracking_cost`` (what enforcing a
tracking plan costs, also reported by ``__main__``) with ``tracking_plan`` (the plan
it enforces).

``databases`` (scratch databases: the benchmark's and the test suite's),
``bounded_work`` (the worst bodies) and ``writes`` (canonical writes made outside the
gateway) are imported by the tests too; the benchmark never imports ``tests``.
"""
