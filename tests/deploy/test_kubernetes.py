"""The Kubernetes manifests (``deploy/k8s``): every overlay rendered, every object
validated against the Kubernetes schemas offline, and the fields that matter checked.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from admin.topics import WRITES_PARTITIONS
from runtime.settings import FILE_NAMES, FILE_SUFFIX, SETTING_NAMES, Settings, is_secret
from schemas.migrate import migrate
from tests.conftest import scratch_database
from tests.deploy.keda import SCHEMAS
from tests.deploy.kustomize import Object, render
from tests.support import BIN, REPO

OVERLAYS = REPO / "deploy" / "k8s" / "overlays"
OVERLAY_NAMES = sorted(p.name for p in OVERLAYS.iterdir() if p.is_dir())
# The oldest Kubernetes release still supported upstream when this was written, and
# the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# Named by the metrics work of issue #20 (the gateway's and the supervisor's metrics
# ports), which lands beside these manifests.
PENDING_SETTINGS = frozenset({"GATEWAY_METRICS_PORT", "SUPERVISOR_METRICS_PORT"})

# lagThreshold's derivation (consumer.yaml's comment, docs/operations.md): one
# consumer process applies 33,290 / 2 messages/s (docs/benchmark.md, the sustained
# run of 2026-12-01 with 2 consumer processes); it should drain its share within
# 5 s; a record of batch traffic carries ~17 messages (100 over 6 partitions).
APPLIED_PER_CONSUMER = 33_290 / 2
DRAIN_S = 5
MESSAGES_PER_RECORD = 100 / WRITES_PARTITIONS


@pytest.fixture(scope="module", params=OVERLAY_NAMES)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Object]]:
    return request.param, render(OVERLAYS / request.param)


def the(objects: list[Object], kind: str, name: str) -> Object:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def pod_templates(objects: list[Object]) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]


def config(objects: list[Object]) -> dict[str, str]:
    data: dict[str, str] = the(objects, "ConfigMap", "ingest-config")["data"]
    return data


def environment(objects: list[Object], container: dict[str, Any]) -> dict[str, str]:
    """The variables a container's process sees from the manifests."""
    assert container["envFrom"] == [{"configMapRef": {"name": "ingest-config"}}]
    return config(objects) | {e["name"]: e["value"] for e in container.get("env", [])}


def test_every_object_is_valid_for_kubernetes(overlay: tuple[str, list[Object]]) -> None:
    name, objects = overlay
    assert objects, f"{name} renders nothing"
    for obj in objects:
        where = f"{name}: {obj['kind']}/{obj['metadata']['name']}"
        if obj["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(obj, SCHEMAS[obj["kind"]])
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{where} is invalid for Kubernetes {version}: {path}: {exc.message}")


def test_the_keda_schemas_refuse_what_the_cluster_would() -> None:
    """The hand-written KEDA schemas are not vacuous: an unquoted boolean in a
    trigger's metadata and an unknown field are refused."""
    scaled = the(render(OVERLAYS / "dev"), "ScaledObject", "ingest-consumer")
    for broken in ({"allowIdleConsumers": False}, {"lagThreshold": 5000}):
        bad: Object = yaml.safe_load(yaml.safe_dump(scaled))
        bad["spec"]["triggers"][0]["metadata"] |= broken
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMAS["ScaledObject"])
    bad = yaml.safe_load(yaml.safe_dump(scaled))
    bad["spec"]["maxReplicas"] = 6
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMAS["ScaledObject"])


def _kustomize() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        probe = subprocess.run(["kubectl", "kustomize", "--help"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["kubectl", "kustomize"]
    return None


@pytest.mark.skipif(_kustomize() is None, reason="no kustomize or kubectl here")
def test_kustomize_renders_the_same_objects(overlay: tuple[str, list[Object]]) -> None:
    name, objects = overlay
    command = _kustomize()
    assert command is not None
    built = subprocess.run(
        [*command, str(OVERLAYS / name)], capture_output=True, text=True, check=True
    ).stdout
    theirs = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(built) if o}
    ours = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    assert ours.keys() == theirs.keys()
    for key, obj in ours.items():
        assert obj == theirs[key], f"{name}: {key} renders differently"


def _probe(container: dict[str, Any], kind: str) -> tuple[str, int]:
    """A probe's path and the container port it names."""
    get = container[kind]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    return get["path"], ports[get["port"]]


@pytest.mark.parametrize(
    ("name", "port_setting"),
    [("ingest-gateway", "GATEWAY_PORT"), ("ingest-consumer", "METRICS_PORT")],
)
def test_probes_and_resources(
    overlay: tuple[str, list[Object]], name: str, port_setting: str
) -> None:
    """Readiness on /readyz, liveness on /healthz, on the port the process serves
    them (the gateway's HTTP port, the consumer worker's health port)."""
    _, objects = overlay
    deployment = the(objects, "Deployment", name)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port = int(environment(objects, container)[port_setting])
    assert _probe(container, "readinessProbe") == ("/readyz", port)
    assert _probe(container, "livenessProbe") == ("/healthz", port)
    assert container["resources"]["requests"]["cpu"]  # autoscaling's utilisation is of this
    assert container["resources"]["limits"]["memory"]
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"


def test_gateway_service_and_cpu_autoscaler(overlay: tuple[str, list[Object]]) -> None:
    _, objects = overlay
    pod_labels = the(objects, "Deployment", "ingest-gateway")["spec"]["template"]["metadata"]
    service = the(objects, "Service", "ingest-gateway")
    assert service["spec"]["selector"].items() <= pod_labels["labels"].items()
    hpa = the(objects, "HorizontalPodAutoscaler", "ingest-gateway")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "ingest-gateway",
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def test_consumers_have_time_to_commit_their_batch(overlay: tuple[str, list[Object]]) -> None:
    _, objects = overlay
    pod = the(objects, "Deployment", "ingest-consumer")["spec"]["template"]["spec"]
    # The supervisor gives its worker CONSUMER_STOP_TIMEOUT_S to commit its batch.
    stop = Settings.model_fields["consumer_stop_timeout_s"].default
    assert pod["terminationGracePeriodSeconds"] > stop


def test_keda_scales_consumers_on_each_lanes_lag_up_to_the_partitions(
    overlay: tuple[str, list[Object]],
) -> None:
    _, objects = overlay
    settings = config(objects)
    scaled = the(objects, "ScaledObject", "ingest-consumer")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "ingest-consumer"
    main, overflow = scaled["triggers"]
    # The lag KEDA reads is the consumers' own: same brokers, group and topic, of
    # each lane (consumers/lanes.py).
    group = settings["CONSUMER_GROUP"]
    lanes = {
        (group, settings["WRITES_TOPIC"]): main,
        (f"{group}.overflow", settings["WRITES_OVERFLOW_TOPIC"]): overflow,
    }
    for (consumer_group, topic), trigger in lanes.items():
        assert trigger["type"] == "kafka"
        metadata = trigger["metadata"]
        assert metadata["bootstrapServers"] == settings["KAFKA_BOOTSTRAP_SERVERS"]
        assert (metadata["consumerGroup"], metadata["topic"]) == (consumer_group, topic)
        assert metadata["offsetResetPolicy"] == "earliest"
        assert metadata["allowIdleConsumers"] == "false"
    # The cap: one consumer per partition, never idle ones.
    per_pod = int(settings["CONSUMER_PROCESSES"])
    assert per_pod == int(settings["CONSUMER_OVERFLOW_PROCESSES"])
    assert scaled["maxReplicaCount"] * per_pod == WRITES_PARTITIONS
    assert scaled["minReplicaCount"] >= 1
    # The threshold, in records, from the measured throughput (within rounding); the
    # overflow lane's worker works at most CONSUMER_OVERFLOW_SHARE of its time.
    derived = APPLIED_PER_CONSUMER * DRAIN_S / MESSAGES_PER_RECORD
    share = Settings.model_fields["consumer_overflow_share"].default
    assert math.isclose(int(main["metadata"]["lagThreshold"]), derived, rel_tol=0.05)
    assert math.isclose(int(overflow["metadata"]["lagThreshold"]), derived * share, rel_tol=0.05)


def test_keda_connects_to_kafka_as_the_consumers_do(overlay: tuple[str, list[Object]]) -> None:
    _, objects = overlay
    settings = config(objects)
    for trigger in the(objects, "ScaledObject", "ingest-consumer")["spec"]["triggers"]:
        _connects_as_the_consumers(objects, settings, trigger)


def _connects_as_the_consumers(
    objects: list[Object], settings: dict[str, str], trigger: dict[str, Any]
) -> None:
    protocol = settings["KAFKA_SECURITY_PROTOCOL"]
    sasl = {"SCRAM-SHA-512": "scram_sha512", "SCRAM-SHA-256": "scram_sha256", "PLAIN": "plaintext"}
    expected_sasl = sasl[settings["KAFKA_SASL_MECHANISM"]] if "SASL" in protocol else None
    assert trigger["metadata"].get("sasl") == expected_sasl
    assert trigger["metadata"].get("tls") == ("enable" if protocol.endswith("SSL") else None)
    if expected_sasl is None:
        assert "authenticationRef" not in trigger
        return
    auth = the(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    # The same Secret keys as the files the consumers read.
    assert refs["username"] == ("ingest-kafka", _key(settings["KAFKA_SASL_USERNAME_FILE"]))
    assert refs["password"] == ("ingest-kafka", _key(settings["KAFKA_SASL_PASSWORD_FILE"]))
    if "KAFKA_SSL_CA_LOCATION" in settings:
        assert refs["ca"] == ("ingest-kafka", _key(settings["KAFKA_SSL_CA_LOCATION"]))


def _key(path: str) -> str:
    assert path.startswith("/run/secrets/kafka/"), path
    return path.rsplit("/", 1)[1]


def test_every_deployment_has_a_disruption_budget(overlay: tuple[str, list[Object]]) -> None:
    _, objects = overlay
    budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"].items()
        mine = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels]
        assert len(mine) == 1, deployment["metadata"]["name"]
        assert mine[0]["spec"]["maxUnavailable"] == 1


def test_credentials_are_files_from_secrets(overlay: tuple[str, list[Object]]) -> None:
    name, objects = overlay
    for where, pod in pod_templates(objects):
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        for container in containers(pod):
            env = environment(objects, container)
            secret_dirs = {
                m["mountPath"]: volumes[m["name"]]["secret"]["secretName"]
                for m in container["volumeMounts"]
                if "secret" in volumes[m["name"]]
            }
            for variable, value in env.items():
                setting = variable.removesuffix(FILE_SUFFIX)
                if variable.endswith(FILE_SUFFIX) or setting == "KAFKA_SSL_CA_LOCATION":
                    assert value.rsplit("/", 1)[0] in secret_dirs, (where, variable)
                else:
                    assert not is_secret(setting), f"{where}: {variable} given in the clear"
            assert set(secret_dirs.values()) == {"ingest-kafka", "ingest-postgres"}, where
    shipped = {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}
    # dev ships throwaway credentials; production never overwrites the real ones.
    assert shipped == ({"ingest-kafka", "ingest-postgres"} if name == "dev" else set())


def test_every_variable_names_a_setting_with_a_valid_value(
    overlay: tuple[str, list[Object]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each process's variables name settings (a misspelt one would be ignored) and
    make valid Settings, with stand-ins for the mounted secret files."""
    _, objects = overlay
    for where, pod in pod_templates(objects):
        for container in containers(pod):
            env = environment(objects, container)
            unknown = set(env) - SETTING_NAMES - FILE_NAMES - PENDING_SETTINGS
            assert not unknown, f"{where}/{container['name']}: not settings: {unknown}"
            with monkeypatch.context() as patch:
                for variable in SETTING_NAMES | FILE_NAMES:  # only what the pod sees
                    patch.delenv(variable, raising=False)
                for variable, value in env.items():
                    if value.startswith("/run/secrets/"):
                        value = str(_stand_in(tmp_path, value))
                    patch.setenv(variable, value)
                Settings()


def _stand_in(root: Path, path: str) -> Path:
    local = root / path.removeprefix("/")
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(
        "postgresql://ingest@db/ingest" if path.endswith("database-url") else "stand-in"
    )
    return local


def test_the_migration_job_creates_topics_then_migrates(overlay: tuple[str, list[Object]]) -> None:
    _, objects = overlay
    job = the(objects, "Job", "ingest-migrate")["spec"]
    pod = job["template"]["spec"]
    assert [c["command"] for c in pod["initContainers"]] == [["ingest-admin", "create-topics"]]
    assert [c["command"] for c in pod["containers"]] == [["ingest-migrate"]]
    assert pod["restartPolicy"] == "Never"
    assert job["backoffLimit"] >= 1
    # The pods that use the schema wait for it.
    for name in ("ingest-gateway", "ingest-consumer"):
        template = the(objects, "Deployment", name)["spec"]["template"]["spec"]
        (wait,) = template["initContainers"]
        assert wait["command"] == ["python", "/opt/ingest/wait_for_schema.py"]


@pytest.mark.services
async def test_pods_wait_until_the_schema_is_current(
    service_urls: tuple[str, str], run_id: str, tmp_path: Path
) -> None:
    """The init container's script, as rendered, waits while a migration is missing
    and lets the pod start once every one is applied."""
    script = tmp_path / "wait_for_schema.py"
    scripts = the(render(OVERLAYS / "production"), "ConfigMap", "ingest-wait-for-schema")
    script.write_text(scripts["data"]["wait_for_schema.py"])

    def waiter(url: str) -> subprocess.Popen[str]:
        env = {"PATH": str(BIN), "DATABASE_URL": url}
        return subprocess.Popen(
            [str(BIN / "python"), str(script)], env=env, stdout=subprocess.PIPE, text=True
        )

    async with scratch_database(service_urls[1], f"ingest_unmigrated_{run_id}") as empty:
        waiting = waiter(empty)
        try:
            first = await asyncio.to_thread(waiting.stdout.readline)  # type: ignore[union-attr]
            assert first.startswith("waiting for migrations: PostgreSQL: UndefinedTableError")
            await migrate(empty)
            out, _ = await asyncio.to_thread(waiting.communicate, timeout=20)
        finally:
            waiting.kill()
    assert waiting.returncode == 0
    assert out.splitlines()[-1] == "schema is current"
