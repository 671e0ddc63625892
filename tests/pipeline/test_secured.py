"""Secured end to end (issue #19, point 5): Kafka over SASL_SSL or mutual TLS,
PostgreSQL over TLS, and what a wrong password or an untrusted certificate does.

One broker of this module's own speaks only TLS to clients (``secured_support``);
one PostgreSQL cluster of its own serves TLS with a certificate of the same test
authority. Every process connects as a user would configure it: the SASL password
from a file (``KAFKA_SASL_PASSWORD_FILE``), ``DATABASE_URL`` with
``sslmode=verify-full`` and ``sslrootcert``; the migrations, ``ingest-admin``, the
gateway and the consumers all go over them.
"""

from __future__ import annotations

import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from admin.teams import create_team
from runtime.settings import Settings
from tests.conftest import settings_env
from tests.pipeline.fault_support import PrivatePostgres, private_postgres
from tests.pipeline.secured_support import LIBS, SCRAM_USER, Certificates, SecuredKafka
from tests.support import BIN, Process, eventually, free_port, wait_for_http

pytestmark = pytest.mark.services

PASSWORD = "scram-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates.make(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
async def kafka(
    tmp_path_factory: pytest.TempPathFactory, certificates: Certificates
) -> AsyncIterator[SecuredKafka]:
    if not LIBS.exists():
        pytest.skip("no local Kafka jars to start a broker with")
    broker = SecuredKafka(tmp_path_factory.mktemp("secured-kafka"), certificates, PASSWORD)
    try:
        await broker.start()
        yield broker
    finally:
        await broker.stop()


@pytest.fixture(scope="module")
async def postgres(
    tmp_path_factory: pytest.TempPathFactory, certificates: Certificates
) -> AsyncIterator[PrivatePostgres]:
    async with private_postgres(
        tmp_path_factory.mktemp("tls-pg"),
        PG_SSL_CERT_FILE=str(certificates.directory / "server.crt"),
        PG_SSL_KEY_FILE=str(certificates.directory / "server.key"),
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def database_url(postgres: PrivatePostgres, certificates: Certificates) -> str:
    """The cluster over TLS, its certificate checked against the test authority."""
    return f"{postgres.url}?sslmode=verify-full&sslrootcert={certificates.ca}"


class Secured:
    """The settings and environment of one test's processes, and their logs."""

    def __init__(self, settings: Settings, log_dir: Path, password: str | None) -> None:
        self.settings = settings
        self.env = settings_env(settings)
        self.log_dir = log_dir
        if password is not None:  # as Kubernetes mounts a secret: a file
            secret = log_dir / "sasl-password"
            secret.write_text(password + "\n")
            del self.env["KAFKA_SASL_PASSWORD"]
            self.env["KAFKA_SASL_PASSWORD_FILE"] = str(secret)
        self.processes: list[Process] = []

    def command(self, *args: str, succeeds: bool = True) -> str:
        """Run a command line of the project with this environment; its output."""
        done = subprocess.run(
            [str(BIN / args[0]), *args[1:]],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert (done.returncode == 0) is succeeds, done.stdout + done.stderr
        return done.stdout + done.stderr

    def start(self, name: str) -> Process:
        process = Process(name, [str(BIN / name)], self.env, self.log_dir)
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "".join(p.log_path.read_text(errors="replace") for p in self.processes)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_port}"


@pytest.fixture
def secured(
    kafka: SecuredKafka, database_url: str, certificates: Certificates, tmp_path: Path
) -> Iterator[Callable[..., Secured]]:
    """Settings for this test's own topic, group and port, over the secured services:
    SASL_SSL by default, or any Kafka settings given."""
    made: list[Secured] = []

    def make(password: str | None = PASSWORD, **kafka_settings: object) -> Secured:
        name = f"secured.{uuid.uuid4().hex[:8]}"
        connection = kafka_settings or {
            "kafka_bootstrap_servers": kafka.sasl_bootstrap,
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": SCRAM_USER,
            "kafka_ssl_ca_location": str(certificates.ca),
        }
        settings = Settings(
            **connection,  # type: ignore[arg-type]
            database_url=database_url,
            writes_topic=f"{name}.writes",
            dead_letter_topic=f"{name}.dlq",
            consumer_group=name,
            gateway_port=free_port(),
            consumer_poll_timeout_ms=50,
            metrics_port=0,
        )
        made.append(Secured(settings, tmp_path, password))
        return made[-1]

    yield make
    for each in made:
        for process in each.processes:
            process.stop()


async def make_team(stack: Secured, database_url: str) -> str:
    """Migrations and a team over PostgreSQL's TLS; the team's key."""
    stack.command("ingest-migrate")
    conn = await asyncpg.connect(database_url)
    try:
        return (await create_team(conn, f"team-{uuid.uuid4().hex[:8]}"))[1]
    finally:
        await conn.close()


async def write_and_read_back(stack: Secured, database_url: str) -> None:
    """Migrations, topics and a team made over the secured services, then one
    customer written through the gateway, applied by the consumers and read back."""
    key = await make_team(stack, database_url)
    assert "created" in stack.command("ingest-admin", "create-topics")
    stack.start("ingest-consumer")
    gateway = stack.start("ingest-gateway")
    await wait_for_http(f"{stack.base_url}/readyz", gateway)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        address = f"tls-{uuid.uuid4().hex[:8]}@example.com"
        created = await http.post(
            f"/api/1.0/customer/{address}?wait=true",
            data={"name": "Over TLS"},
            headers={"X-API-KEY": key},
        )
        assert created.status_code == 200, created.text + stack.logs()
        found = await http.get(f"/api/1.0/customer/{address}", headers={"X-API-KEY": key})
        assert found.status_code == 200 and found.json()["name"] == "Over TLS", found.text


async def test_the_pipeline_runs_over_sasl_ssl_and_postgres_over_tls(
    secured: Callable[..., Secured], database_url: str
) -> None:
    stack = secured()
    await write_and_read_back(stack, database_url)

    # Every TCP connection to PostgreSQL (gateway, consumers) is encrypted.
    conn = await asyncpg.connect(database_url)
    try:
        plain = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
            " WHERE a.client_addr IS NOT NULL AND NOT s.ssl"
        )
        encrypted = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
            " WHERE a.client_addr IS NOT NULL AND s.ssl"
        )
    finally:
        await conn.close()
    assert plain == 0 and encrypted >= 2

    # The password is in no log, and the settings shown mask it.
    shown = stack.command("ingest-admin", "config")
    assert "KAFKA_SECURITY_PROTOCOL=SASL_SSL" in shown.splitlines()
    assert "KAFKA_SASL_PASSWORD=********" in shown.splitlines()
    assert PASSWORD not in shown and PASSWORD not in stack.logs()


def test_every_sslmode_that_encrypts_works_and_an_untrusted_server_is_refused(
    secured: Callable[..., Secured], postgres: PrivatePostgres, certificates: Certificates
) -> None:
    stack = secured()
    for mode in ("require", "verify-ca", "verify-full"):
        stack.env["DATABASE_URL"] = f"{postgres.url}?sslmode={mode}&sslrootcert={certificates.ca}"
        stack.command("ingest-migrate")
        stack.command("ingest-admin", "list-teams")
    rogue = f"{postgres.url}?sslmode=verify-full&sslrootcert={certificates.rogue_ca}"
    stack.env["DATABASE_URL"] = rogue
    refused = stack.command("ingest-admin", "list-teams", succeeds=False)
    assert "certificate verify failed" in refused, refused


async def test_the_pipeline_runs_over_mutual_tls(
    secured: Callable[..., Secured],
    kafka: SecuredKafka,
    certificates: Certificates,
    database_url: str,
) -> None:
    stack = secured(
        password=None,
        kafka_bootstrap_servers=kafka.mtls_bootstrap,
        kafka_security_protocol="SSL",
        kafka_ssl_ca_location=str(certificates.ca),
        kafka_ssl_certificate_location=str(certificates.directory / "client.crt"),
        kafka_ssl_key_location=str(certificates.directory / "client.key"),
    )
    await write_and_read_back(stack, database_url)


@pytest.mark.parametrize(
    ("fault", "logged"),
    [("wrong password", "invalid credentials"), ("untrusted CA", "CERTIFICATE_VERIFY_FAILED")],
)
async def test_a_refused_connection_is_a_clear_error_a_503_and_no_crash_loop(
    secured: Callable[..., Secured],
    certificates: Certificates,
    database_url: str,
    fault: str,
    logged: str,
) -> None:
    if fault == "wrong password":
        stack = secured(password="not-" + PASSWORD)
    else:
        stack = secured()
        stack.env["KAFKA_SSL_CA_LOCATION"] = str(certificates.rogue_ca)
    key = await make_team(stack, database_url)
    gateway = stack.start("ingest-gateway")
    consumer = stack.start("ingest-consumer")
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:

        async def not_ready() -> httpx.Response | None:
            try:
                answer = await http.get("/readyz")
            except httpx.TransportError:
                return None  # not listening yet
            return answer if answer.status_code == 503 else None

        assert (await eventually(not_ready, timeout=60)).json() == {
            "kafka": False,
            "postgres": True,
        }
        refused = await http.post(
            "/api/1.0/customer/a@example.com", data={"name": "A"}, headers={"X-API-KEY": key}
        )
        assert refused.status_code == 503 and refused.headers["Retry-After"], refused.text

    # Both keep trying, saying why, rather than exiting (and being restarted).
    for process in (gateway, consumer):

        async def retried(process: Process = process) -> bool:
            return process.log_path.read_text(errors="replace").count(logged) >= 2

        await eventually(retried, timeout=60, interval=0.5)
        assert process.popen.poll() is None, process.tail()
    assert PASSWORD not in stack.logs()
