"""The write-path benchmark (``make bench``), and what the tests borrow from it.

``databases`` (scratch databases: the benchmark's and the test suite's) and
``bounded_work`` (the worst bodies) are imported by the tests too; the benchmark
never imports ``tests``.
"""
