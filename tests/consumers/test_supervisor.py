"""``ingest-consumer`` supervises its workers: restarts, clean stops, giving up, orphans.

Each test runs its own ``ingest-consumer`` on a topic and consumer group of its
own (two partitions), against the session's database.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from consumers.supervisor import ChildSpec, RestartPolicy, Supervisor, describe_exit
from runtime.settings import Settings
from schemas.messages import Identifiers, WriteMessage, encode, new_message_id, utcnow
from schemas.topics import partition_key
from tests.conftest import Team, create_topics, settings_env
from tests.consumers.test_dead_letter_limit import produce_garbage
from tests.support import BIN, Process, children_of, eventually

PARTITIONS = 2

Start = Callable[..., Process]


def process_state(pid: int) -> str | None:
    """The state letter of ``pid`` in /proc (``Z`` for a zombie), or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    return process_state(pid) not in (None, "Z")


async def wait_for_children(
    proc: Process, count: int, without: frozenset[int] = frozenset()
) -> set[int]:
    """Wait until ``proc`` has exactly ``count`` children, none of them in ``without``."""

    async def ready() -> set[int] | None:
        if proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited:\n{proc.tail()}")
        children = children_of(proc.popen.pid)
        return children if len(children) == count and not children & without else None

    return await eventually(ready, timeout=60, interval=0.1)


async def wait_for_log(proc: Process, text: str, count: int = 1, timeout: float = 60) -> None:
    async def logged() -> bool:
        return proc.log_path.read_text(errors="replace").count(text) >= count

    try:
        await eventually(logged, timeout=timeout, interval=0.1)
    except AssertionError:
        raise AssertionError(f"{text!r} not logged {count} time(s):\n{proc.tail()}") from None


def supervision(proc: Process) -> str:
    """The supervisor's own lines of ``proc``'s log (the workers' are far more)."""
    lines = proc.log_path.read_text(errors="replace").splitlines()
    return "\n".join(line for line in lines if " supervisor consumers.supervisor: " in line)


async def wait_for_exit(proc: Process, timeout: float = 60) -> int:
    async def exited() -> tuple[int] | None:
        code = proc.popen.poll()
        return None if code is None else (code,)  # a tuple: exit code 0 counts as done

    (code,) = await eventually(exited, timeout=timeout, interval=0.1)
    return code


@pytest.fixture
async def private(settings: Settings, run_id: str) -> Settings:
    """The session's settings with a topic and a consumer group of this test's own."""
    name = f"test.{run_id}.supervised.{uuid.uuid4().hex[:8]}"
    overflow = f"{name}.overflow"
    await create_topics(settings.kafka_bootstrap_servers, {name: PARTITIONS, overflow: PARTITIONS})
    return settings.model_copy(
        update={
            "writes_topic": name,
            "writes_overflow_topic": overflow,
            "consumer_group": name,
            "metrics_port": 0,
            # The overflow lane's worker only where a test asks for it (--overflow-processes).
            "consumer_overflow_processes": 0,
        }
    )


@pytest.fixture
def start(private: Settings, log_dir: Path) -> Iterator[Start]:
    """Start ``ingest-consumer ARGS...`` on the private topic; keyword arguments are env."""
    started: list[Process] = []

    def run(*args: str, **env: str) -> Process:
        name = f"supervisor-{uuid.uuid4().hex[:8]}"
        proc = Process(
            name, [str(BIN / "ingest-consumer"), *args], settings_env(private) | env, log_dir
        )
        started.append(proc)
        return proc

    yield run
    for proc in started:
        proc.stop()


@pytest.fixture
async def admin(private: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=private.kafka_bootstrap_servers)
    await client.start()
    yield client
    await client.close()


async def stable_members(admin: AIOKafkaAdminClient, group: str, count: int) -> set[str] | None:
    """The member ids of ``group`` once it is Stable with ``count`` members (each holds
    its partitions)."""
    (response,) = await admin.describe_consumer_groups([group])
    described = response.groups[0]
    members = {member[0] for member in described[5]}
    return members if described[2] == "Stable" and len(members) == count else None


async def produce_to_every_partition(
    settings: Settings, team: Team, topic: str | None = None
) -> list[WriteMessage]:
    now = utcnow()
    messages = [
        WriteMessage(
            id=new_message_id(),
            team_id=team.id,
            op="upsert_customer",
            identifiers=Identifiers(email=f"p{p}-{uuid.uuid4().hex[:8]}@example.com"),
            occurred_at=now,
            received_at=now,
            attributes={"partition": p},
        )
        for p in range(PARTITIONS)
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for p, m in enumerate(messages):
            key = partition_key(m.team_id, m.identifiers)
            await producer.send_and_wait(
                topic or settings.writes_topic, encode(m), key=key, partition=p
            )
    finally:
        await producer.stop()
    return messages


async def wait_until_applied(db: asyncpg.Pool, team: Team, messages: list[WriteMessage]) -> None:
    """Every message's customer is in PostgreSQL with the message's attributes."""

    async def applied() -> bool:
        rows = await db.fetch(
            "SELECT i.value, c.attributes FROM customer_identifiers i"
            " JOIN customers c ON c.id = i.customer_id"
            " WHERE i.team_id = $1 AND i.kind = 'email'",
            team.id,
        )
        stored = {r["value"]: orjson.loads(r["attributes"]) for r in rows}
        return all(stored.get(m.identifiers.email) == m.attributes for m in messages)

    await eventually(applied, timeout=60, interval=0.1)


async def test_a_killed_worker_is_restarted_and_consumes_again(
    start: Start, private: Settings, admin: AIOKafkaAdminClient, db: asyncpg.Pool, team: Team
) -> None:
    proc = start("--processes", "2")
    first = await wait_for_children(proc, 2)
    group = private.consumer_group
    before = await eventually(lambda: stable_members(admin, group, 2), timeout=60, interval=0.2)

    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    now = await wait_for_children(proc, 2, without=frozenset({victim}))
    assert len(now & first) == 1  # the other worker went on running
    await wait_for_log(proc, f"(pid {victim}) exited (killed by SIGKILL)")
    await wait_for_log(proc, "restarting it in 0.5 s")

    # The group settles with the survivor and the new worker (the killed member
    # leaves once its session times out); then each worker holds one partition.
    async def rejoined() -> set[str] | None:
        members = await stable_members(admin, group, 2)
        return members if members and len(members & before) == 1 else None

    await eventually(rejoined, timeout=90, interval=0.2)
    messages = await produce_to_every_partition(private, team)
    await wait_until_applied(db, team, messages)
    assert children_of(proc.popen.pid) == now  # and nothing restarted meanwhile


async def test_the_overflow_lane_has_its_own_group_of_niced_workers(
    start: Start, private: Settings, admin: AIOKafkaAdminClient, db: asyncpg.Pool, team: Team
) -> None:
    proc = start("--processes", "1", "--overflow-processes", "2")
    children = await wait_for_children(proc, 3)
    await wait_for_log(proc, f"consumer started on {private.writes_overflow_topic}", count=2)
    await wait_for_log(proc, f"consumer started on {private.writes_topic} ")
    # Each lane is a group of its own: the overflow's backlog never holds the main one.
    await eventually(
        lambda: stable_members(admin, f"{private.consumer_group}.overflow", 2),
        timeout=60,
        interval=0.2,
    )
    await eventually(
        lambda: stable_members(admin, private.consumer_group, 1), timeout=60, interval=0.2
    )
    nice = sorted(niceness(pid) for pid in children)
    assert nice == [0, private.consumer_overflow_nice, private.consumer_overflow_nice]
    main = await produce_to_every_partition(private, team)
    overflow = await produce_to_every_partition(private, team, private.writes_overflow_topic)
    await wait_until_applied(db, team, main + overflow)


def niceness(pid: int) -> int:
    """The CPU niceness of ``pid`` (field 19 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


@pytest.mark.parametrize("processes", [1, 2])
async def test_sigterm_stops_every_worker_cleanly_and_exits_0(
    start: Start, private: Settings, processes: int
) -> None:
    proc = start("--processes", str(processes))
    children = await wait_for_children(proc, processes)
    # Once their poll loops run, SIGTERM makes the workers finish their batch and exit 0.
    await wait_for_log(proc, f"consumer started on {private.writes_topic}", count=processes)

    proc.popen.send_signal(signal.SIGTERM)
    assert await wait_for_exit(proc) == 0, proc.tail()
    assert not [pid for pid in children if alive(pid)]
    log = proc.log_path.read_text()
    for i in range(processes):
        assert re.search(rf"consumer-{i} \(pid \d+\) stopped \(exit code 0\)", log), log
    assert "restarting" not in log


def taken_port_and_the_next_reserved() -> tuple[socket.socket, socket.socket]:
    """A port P that is taken, and P + 1 reserved: no other program can bind P + 1
    meanwhile, but a server setting SO_REUSEADDR (Prometheus's does) still can."""
    while True:
        taken, reserved = socket.socket(), socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            reserved.bind(("127.0.0.1", taken.getsockname()[1] + 1))
        except (OSError, OverflowError):
            taken.close()
            reserved.close()
            continue
        return taken, reserved


async def test_a_worker_that_keeps_dying_at_start_makes_the_supervisor_exit_1(
    start: Start, private: Settings
) -> None:
    # consumer-0's metrics port is taken, so it dies at once on every start;
    # consumer-1 (the next port) runs, and must be stopped by the supervisor.
    taken, reserved = taken_port_and_the_next_reserved()
    with taken, reserved:
        port = taken.getsockname()[1]
        proc = start("--processes", "2", METRICS_PORT=str(port), CONSUMER_RESTART_BACKOFF_S="0.1")
        seen: set[int] = set()

        async def exited() -> tuple[int] | None:
            seen.update(children_of(proc.popen.pid))
            code = proc.popen.poll()
            return None if code is None else (code,)

        (code,) = await eventually(exited, timeout=90, interval=0.05)
    log = supervision(proc)
    assert code == 1, log
    assert re.search(r"consumer-0 \(pid \d+\) died 5 times in a row within 5\.0 s of start", log)
    for delay in ("0.1", "0.2", "0.4", "0.8"):  # the backoff doubled at each restart
        assert f"restarting it in {delay} s" in log, log
    assert re.search(r"consumer-1 \(pid \d+\) stopped \(", log), log
    assert len(seen) >= 2 and not [pid for pid in seen if alive(pid)]


async def test_a_worker_stopped_by_the_dead_letter_limit_is_not_restarted(
    start: Start, private: Settings
) -> None:
    await produce_garbage(private.kafka_bootstrap_servers, private.writes_topic)
    proc = start(DEAD_LETTER_WINDOW="100", DEAD_LETTER_MAX_RATIO="0.9")
    assert await wait_for_exit(proc) == 3, proc.tail()
    log = proc.log_path.read_text()
    assert re.search(r"consumer-0 \(pid \d+\) exited \(exit code 3\)", log), proc.tail()
    assert "restarting" not in log


async def test_workers_stop_when_their_supervisor_is_killed(
    start: Start, private: Settings
) -> None:
    proc = start("--processes", "2")
    children = await wait_for_children(proc, 2)
    await wait_for_log(proc, f"consumer started on {private.writes_topic}", count=2)

    proc.popen.kill()
    proc.popen.wait()

    async def gone() -> bool:
        return not [pid for pid in children if alive(pid)]

    await eventually(gone, timeout=60, interval=0.1)
    await wait_for_log(proc, "the supervisor is gone: stopping", count=2)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_worker_is_restarted_whatever_its_exit_code_0_included(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = RestartPolicy(backoff_s=0.01, backoff_max_s=0.02, max_start_failures=4)
    supervisor = Supervisor([ChildSpec("quitter", python("pass"))], policy)
    with caplog.at_level(logging.INFO, logger="consumers.supervisor"):
        assert supervisor.run() == 1
    assert caplog.text.count("exited (exit code 0)") == 3
    assert caplog.text.count("restarting it in") == 3
    assert caplog.text.count("started quitter") == 4
    assert "died 4 times in a row" in caplog.text


def test_a_fatal_exit_code_stops_everything_without_a_restart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    children = [
        ChildSpec("stopper", python("import time; time.sleep(0.5); raise SystemExit(3)")),
        ChildSpec("sleeper", python("import time; time.sleep(60)")),
    ]
    with caplog.at_level(logging.INFO, logger="consumers.supervisor"):
        assert Supervisor(children, RestartPolicy(), fatal_exit_codes={3}).run() == 3
    assert "restarting" not in caplog.text
    assert re.search(
        r"stopper \(pid \d+\) exited \(exit code 3\).*not to be restarted", caplog.text
    )
    assert re.search(r"sleeper \(pid \d+\) stopped \(killed by SIGTERM\)", caplog.text)


def test_backoff_doubles_from_the_first_delay_up_to_the_cap() -> None:
    policy = RestartPolicy()
    assert [policy.delay(n) for n in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]
    assert policy.delay(10_000) == 10
    quick = RestartPolicy.from_settings(
        Settings(consumer_restart_backoff_s=0.1, consumer_restart_max_start_failures=3)
    )
    assert (quick.backoff_s, quick.max_start_failures, quick.backoff_max_s) == (0.1, 3, 10)
    with pytest.raises(ValueError, match="backoff_max_s must be >= backoff_s"):
        RestartPolicy(backoff_s=2, backoff_max_s=1)


def test_exits_are_described_by_code_or_signal() -> None:
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(-99) == "killed by signal 99"
