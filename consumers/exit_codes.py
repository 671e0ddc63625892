"""Exit codes of a consumer worker that its supervisor acts on (imports nothing)."""

# The dead-letter limit stopped the worker for a person to look (``run_worker``): a
# restart would only meet the same batch again, so the supervisor stops too.
STOPPED_FOR_A_PERSON = 3
