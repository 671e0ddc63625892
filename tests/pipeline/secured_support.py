"""Secured services for tests/pipeline/test_secured.py: certificates, a broker that
speaks only TLS (with SCRAM or client certificates), PostgreSQL over TLS.

Certificates are made with ``openssl`` for every run: an authority the clients
trust, the servers' certificates for 127.0.0.1, a client certificate for mutual
TLS, and a second, unrelated authority whose certificates nobody trusts.

The broker is the project's Kafka (the jars ``deploy/kafka/kafka.sh`` resolves) run
with a configuration of this module's own: one combined KRaft node whose clients
reach it only through ``SASL_SSL`` (SCRAM-SHA-512, the user made when the storage
is formatted) or ``SSL`` with a client certificate required; replication and the
controller stay on loopback listeners the clients are never told about.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.pipeline.fault_support import listening, service_port
from tests.support import REPO

LIBS = Path(os.environ.get("KAFKA_LIBS_DIR", REPO / ".local" / "kafka" / "libs"))
SCRAM_USER = "ingest-pipeline"
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Certificates:
    """PEM files in ``directory``: ``ca.pem``; ``server.pem`` (key and chain, for
    Kafka) and ``server.crt``/``server.key`` (for PostgreSQL); ``client.crt`` /
    ``client.key``; ``rogue-ca.pem``, an authority that signed nothing here."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def rogue_ca(self) -> Path:
        return self.directory / "rogue-ca.pem"

    @classmethod
    def make(cls, directory: Path) -> Certificates:
        directory.mkdir(parents=True, exist_ok=True)
        for ca in ("ca", "rogue-ca"):
            openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN=ingest test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                    cwd=directory)  # fmt: skip
        names = {"server": "subjectAltName=IP:127.0.0.1,DNS:localhost", "client": ""}
        for name, extension in names.items():
            openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                    "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory)  # fmt: skip
            (directory / f"{name}.ext").write_text(extension + "\n" if extension else "\n")
            openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                    "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                    "-out", f"{name}.crt", cwd=directory)  # fmt: skip
        # Kafka reads a PEM key store as one file: the (PKCS#8) key, then the chain.
        key = (directory / "server.key").read_text()
        (directory / "server.pem").write_text(key + (directory / "server.crt").read_text())
        return cls(directory)


class SecuredKafka:
    """One broker whose client listeners are ``SASL_SSL`` (SCRAM) and ``SSL`` (mutual)."""

    def __init__(self, directory: Path, certificates: Certificates, password: str) -> None:
        self.directory = directory
        self.certificates = certificates
        self.password = password
        self.sasl_port, self.mtls_port = service_port(), service_port()
        self.internal_port, self.controller_port = service_port(), service_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def mtls_bootstrap(self) -> str:
        return f"127.0.0.1:{self.mtls_port}"

    def _properties(self) -> str:
        store = self.certificates.directory
        return f"""
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}
listeners=SASL_SSL://127.0.0.1:{self.sasl_port},SSL://127.0.0.1:{self.mtls_port},INTERNAL://127.0.0.1:{self.internal_port},CONTROLLER://127.0.0.1:{self.controller_port}
advertised.listeners=SASL_SSL://127.0.0.1:{self.sasl_port},SSL://127.0.0.1:{self.mtls_port},INTERNAL://127.0.0.1:{self.internal_port}
listener.security.protocol.map=SASL_SSL:SASL_SSL,SSL:SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
log.dirs={self.directory / "data"}
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={SCRAM_LOGIN}
ssl.keystore.type=PEM
ssl.keystore.location={store / "server.pem"}
ssl.truststore.type=PEM
ssl.truststore.location={store / "ca.pem"}
listener.name.ssl.ssl.client.auth=required
"""

    def _java(self, *args: str) -> list[str]:
        return ["java", "-Xmx384m", "-Xms128m", "-cp", f"{LIBS}/*", *args]

    async def start(self) -> None:
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        config = self.directory / "server.properties"
        config.write_text(self._properties())
        log = self.directory / "server.out"
        # SCRAM credentials go in with the storage's first metadata: no broker call
        # without credentials is ever needed.
        scram = f"SCRAM-SHA-512=[name={SCRAM_USER},password={self.password}]"
        format_ = self._java("kafka.tools.StorageTool", "format", "--standalone",
                             "--cluster-id", "c2VjdXJlZC1pbmdlc3QtMQ", "--config", str(config),
                             "--add-scram", scram)  # fmt: skip
        done = await asyncio.to_thread(
            subprocess.run, format_, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        with log.open("wb") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self._java(f"-Dkafka.logs.dir={self.directory}", "kafka.Kafka", str(config)),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = asyncio.get_running_loop().time() + 90
        while not (listening(self.sasl_port) and listening(self.mtls_port)):
            assert self.process.returncode is None, log.read_text()[-5000:]
            assert asyncio.get_running_loop().time() < deadline, log.read_text()[-5000:]
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            await asyncio.wait_for(self.process.wait(), 30)
        shutil.rmtree(self.directory / "data", ignore_errors=True)
