"""Property-based fuzzing of the gateway from its own OpenAPI description.

schemathesis generates requests for every operation the gateway documents (valid
ones from the schema and the documents' examples, and invalid ones around them)
and checks each answer: never a 5xx, and never a status code the OpenAPI does not
list. A fixed seed and a time budget keep the run reproducible and bounded.
"""

from __future__ import annotations

import subprocess

from tests.conftest import Team
from tests.support import BIN

FUZZ_SECONDS = 60
EXAMPLES_PER_OPERATION = 20
SEED = 20261201


def test_no_server_error_and_no_undocumented_status(gateway: str, team: Team) -> None:
    run = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "run",
            f"{gateway}/openapi.json",
            "--header",
            f"X-API-KEY: {team.key}",
            "--checks",
            "not_a_server_error,status_code_conformance",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            str(SEED),
            "--max-time",
            str(FUZZ_SECONDS),
            "--workers",
            "1",
            "--generation-database",
            "none",  # every run the same: nothing remembered from earlier runs
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS * 3,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
