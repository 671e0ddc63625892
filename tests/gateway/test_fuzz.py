"""Property-based fuzzing of the gateway from its own OpenAPI description.

schemathesis generates requests for every operation the gateway documents (valid
ones from the schema and the documents' examples, and invalid ones around them)
and checks each answer: never a 5xx, never a status code the OpenAPI does not list,
every request the schema allows accepted (``positive_data_acceptance``) and every
request it forbids refused (``negative_data_rejection``). So the OpenAPI says what
the gateway does: client generators and fuzzers can trust it.

It runs with valid keys (the team's API key for the 000 to 004 surfaces, its write
key for the Segment spec, its id as the store of 004), a fixed seed, a bounded
number of examples per operation and a time budget, so that it is reproducible and
bounded: the documents' examples, then positive and negative data drawn from the
schemas. (schemathesis' coverage and stateful phases add boundary cases and links;
with them a run takes about six minutes here: worth a run by hand after a change of
the description, with ``_config``'s settings.)

What the OpenAPI cannot say is allowed for narrowly (an operation and a check each),
in ``GAPS``, each with its reason: the list docs/api.md keeps in "What the OpenAPI
cannot say" (``GAPS_DOC``).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from runtime.settings import Settings
from tests.conftest import Team, private_gateway
from tests.support import BIN, REPO, Process

# The budget: the run's phases and its examples per operation bound its work (about
# 1.5 minutes; schemathesis' own --max-time would rather repeat the phases until it is
# spent, and cut operations short on a loaded machine); past BUDGET_SECONDS it fails.
PHASES = "examples,fuzzing"
EXAMPLES_PER_OPERATION = 40
SEED = 20261205
BUDGET_SECONDS = 240
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
)
_NEGATIVE = "negative_data_rejection"
# schemathesis' own list of refusals, and 413: the gateway refuses what is beyond a
# limit (a batch's maxItems, a body's bytes) as Content Too Large.
REFUSALS = (
    "400",
    "401",
    "403",
    "404",
    "405",
    "406",
    "409",
    "413",
    "415",
    "422",
    "428",
    "429",
    "5xx",
)
HOOKS = Path(__file__).with_name("fuzz_hooks.py")
GAPS_DOC = "docs/api.md#what-the-openapi-cannot-say"


@dataclass(frozen=True)
class Gap:
    """What the OpenAPI cannot say of one operation, so one check is relaxed there:
    turned off, or (``statuses``) taking these statuses as well."""

    method: str
    path: str
    check: str
    reason: str
    statuses: tuple[str, ...] = ()

    def toml(self) -> str:
        table = f"[operations.checks.{self.check}]"
        if self.statuses:
            expected = _default_statuses(self.check) + self.statuses
            setting = f"expected-statuses = {json.dumps(list(expected))}"
        else:
            setting = "enabled = false"
        name = json.dumps(f"{self.method} {self.path}")
        return f"[[operations]]\ninclude-name = {name}\n{table}\n{setting}\n"


def _default_statuses(check: str) -> tuple[str, ...]:
    if check == _NEGATIVE:
        return REFUSALS
    return ("2xx", "3xx", "401", "403", "404", "409", "429", "5xx")  # schemathesis' own


# Each one is in docs/api.md, "What the OpenAPI cannot say" (GAPS_DOC), with its reason.
GAPS = (
    Gap(
        "POST",
        "/api/1.0/batch",
        "negative_data_rejection",
        "an item that breaks its schema is rejected alone, in the 200 answer, as the"
        " batch endpoint promises: only the envelope can make the request a 4xx",
    ),
    Gap(
        "POST",
        "/rest-api/enterprise-interface/v1.0/events",
        "positive_data_acceptance",
        "a well-formed event_type_id or customer_id the team does not have is 422: which"
        " ids exist is no schema's to say (as 404 is for a path's id)",
        statuses=("422",),
    ),
    *(
        Gap(
            "POST",
            path,
            "positive_data_acceptance",
            "a batch whose context, copied into each message without one, would store more"
            " bytes than the request holds is 413: JSON Schema counts items and characters,"
            " not the bytes a value takes",
            statuses=("413",),
        )
        for path in ("/v1/batch", "/v1/import")
    ),
)


def _config(team: Team) -> str:
    """The schemathesis configuration: the keys, the store, the refusals, the gaps."""
    key = json.dumps(team.key)
    return "\n".join(
        [
            f"hooks = {json.dumps(str(HOOKS))}",
            # The identifier patterns filter what they draw (NotJunk's "not"): slower
            # to draw, not wrong.
            'suppress-health-check = ["filter_too_much"]',
            "[auth.openapi.apiKeyHeader]",
            f"api_key = {key}",
            "[auth.openapi.apiKeyQuery]",
            f"api_key = {key}",
            "[auth.openapi.basic]",
            'username = "fuzz"',
            f"password = {key}",
            "[auth.openapi.writeKey]",
            f"username = {key}",
            'password = ""',
            # (the checks named here, not on the command line, where they would
            # override what an operation's entry turns off)
            "[checks]",
            "enabled = false",
            *(f"[checks.{check}]\nenabled = true" for check in CHECKS if check != _NEGATIVE),
            f"[checks.{_NEGATIVE}]",
            "enabled = true",
            f"expected-statuses = {json.dumps(list(REFUSALS))}",
            "[[operations]]",
            'include-path = "/core/v3/stores/{app_key}/custom_events"',
            f'parameters = {{ "path.app_key" = "{team.id}" }}',
            *(gap.toml() for gap in GAPS),
        ]
    )


async def test_the_gateway_does_what_its_openapi_says(
    settings: Settings, log_dir: Path, consumer: Process, team: Team, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(team))
    # A wait for the consumers (?wait=true) runs out in a second: a 202 is one of the
    # answers checked, and no request outlasts schemathesis' own timeout.
    async with private_gateway(settings, log_dir, "gateway-fuzz", wait_timeout_s=1) as (base, _):
        run = _fuzz(base, config)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]


def _fuzz(gateway: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "schemathesis"),
            "--config-file",
            str(config),
            "run",
            f"{gateway}/openapi.json",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            str(SEED),
            "--phases",
            PHASES,
            "--workers",
            "1",
            "--generation-database",
            "none",  # every run the same: nothing remembered from earlier runs
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=BUDGET_SECONDS,
        check=False,
    )


def test_every_gap_is_listed_with_its_reason_in_the_docs() -> None:
    """GAPS and docs/api.md's list are one list: each relaxed check is in its table."""
    section = (REPO / "docs/api.md").read_text().split("## What the OpenAPI cannot say")[1]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    for gap in GAPS:
        assert any(f"`{gap.method} {gap.path}`" in r and gap.check in r for r in rows), gap
    assert len(rows) == len({gap.reason for gap in GAPS})
