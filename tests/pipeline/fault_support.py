"""Tools of the fault suite (tests/test_faults.py): a private stack, faults, a load, an audit.

* ``PrivateKafka`` and ``PrivatePostgres`` run a broker and a cluster of the suite's
  own with the deploy scripts (``deploy/kafka/kafka.sh``, ``deploy/postgres/pg.sh``),
  on their own directories and ports, so killing them disturbs no other test;
  ``PrivateCluster`` runs several Kafka nodes the same way, and ``under_replicated``
  says which partitions still miss a copy.
* ``TcpProxy`` sits between a client and a server and can drop every connection
  it carries, the way asyncpg's own adversity tests cut a connection
  (``MagicStack/asyncpg: asyncpg/_testbase/fuzzer.py``). It runs in a thread with
  its own event loop, so it keeps forwarding while the test's loop is busy.
* ``Load`` sends small batches to ``POST /api/1.0/batch`` continuously and records
  what became of every item: acknowledged (2xx, with its message id), refused
  (503), or unknown (a timeout or a broken connection: the write may or may not
  have been accepted). ``stored`` then reads what PostgreSQL holds and
  ``lost_or_duplicated`` compares: the lost-write audit of
  ``jepsen-io/redpanda: src/jepsen/redpanda/workload/queue.clj``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.support import REPO

KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"
PG_SH = REPO / "deploy" / "postgres" / "pg.sh"


async def run_script(args: list[str], env: Mapping[str, str], log: Path, timeout: float) -> None:
    """Run a deploy script without blocking the event loop (the load goes on meanwhile)."""
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *args, env=dict(env), stdout=out, stderr=subprocess.STDOUT, cwd=REPO
        )
        try:
            async with asyncio.timeout(timeout):
                code = await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"{args} did not finish within {timeout}s (see {log})") from None
    if code != 0:
        raise AssertionError(f"{args} exited {code}:\n{_tail(log, 20)}")


def _tail(path: Path, lines: int) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ------------------------------------------------------------------ processes ----


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    return stat.rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def children_of(pid: int, containing: str = "") -> set[int]:
    """The live children of ``pid`` whose command line contains ``containing``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[0] == "Z" or int(fields[1]) != pid:
            continue
        if containing in cmdline(int(entry.name)):
            found.add(int(entry.name))
    return found


def listening(port: int) -> bool:
    """Whether a socket listens on TCP ``port`` (read from /proc: connecting to find out
    could itself take the port, below)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def service_port() -> int:
    """A free port below the ephemeral range, for a server this suite stops and starts.

    While a server is down its clients keep connecting to its port; a port in the
    ephemeral range may then be chosen as such a connection's own source port, and
    the connection connects to itself (TCP simultaneous open) and holds the port, so
    the server cannot listen there again.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")


def service_port_block(offsets: tuple[int, ...], attempts: int = 200) -> int:
    """A port ``service_port()`` found free such that each ``port + offset`` is free and
    below the ephemeral range too (the ports of a cluster's nodes, set by one base)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])

    def free(port: int) -> bool:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
            return True

    for _ in range(attempts):
        base = service_port()
        if base + max(offsets) < low and all(free(base + offset) for offset in offsets):
            return base
    raise AssertionError(f"no free ports at offsets {offsets} below the ephemeral range")


async def sigkill(pid: int, ports: tuple[int, ...] = (), timeout: float = 15) -> None:
    """SIGKILL ``pid``; wait until it runs no more and no longer listens on ``ports``.

    A multi-threaded process's leader may be a zombie while its other threads still
    exit and hold its sockets: hence the ports.
    """
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while alive(pid) or any(listening(port) for port in ports):
        if time.monotonic() > deadline:
            raise AssertionError(f"pid {pid} still alive or listening {timeout}s after SIGKILL")
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------ services ----


class PrivateKafka:
    """A single-node broker of our own, started and stopped with ``kafka.sh``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = service_port()
        self.controller_port = service_port()
        self.log = directory.parent / "kafka-script.log"
        self.env = {
            **os.environ,
            "KAFKA_DIR": str(directory),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_HEAP_OPTS": "-Xmx384m -Xms128m",
        }

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def run(self, command: str) -> None:
        await run_script(["bash", str(KAFKA_SH), command], self.env, self.log, timeout=120)

    def pid(self) -> int:
        return int((self.directory / "kafka.pid").read_text().strip())


class PrivateCluster(PrivateKafka):
    """``nodes`` Kafka nodes of our own, each a broker and a controller, run with
    ``kafka.sh`` (``KAFKA_BROKERS``): topics made on it get min(nodes, 3) copies.

    Node K listens on ``port + 10(K-1)`` for clients, ``controller_port + 10(K-1)`` for
    the controller quorum and ``internal_port + 10(K-1)`` for replication, as
    ``kafka.sh`` lays them out. ``advertise`` makes a node name another port to the
    clients (a ``TcpProxy`` in front of it) while the brokers still replicate directly.
    """

    STEP = 10  # between the ports of two nodes, in kafka.sh

    def __init__(self, directory: Path, nodes: int = 3) -> None:
        super().__init__(directory)
        self.nodes = nodes
        offsets = tuple(k * self.STEP + i for k in range(nodes) for i in range(3))
        self.port = service_port_block(offsets)
        self.controller_port = self.port + 1
        self.internal_port = self.port + 2
        self.advertised: dict[int, int] = {}
        self.proxies: dict[int, TcpProxy] = {}
        self.env |= {
            "KAFKA_BROKERS": str(nodes),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_INTERNAL_PORT": str(self.internal_port),
            # Three JVMs start at once on a small machine (within run()'s 120 s).
            "KAFKA_START_TIMEOUT": "100",
        }

    def ports(self, node: int) -> tuple[int, int, int]:
        """Node ``node``'s listening ports: clients, controller, replication."""
        offset = (node - 1) * self.STEP
        return (
            self.port + offset,
            self.controller_port + offset,
            self.internal_port + offset,
        )

    def proxy_clients(self, node: int) -> TcpProxy:
        """A started ``TcpProxy`` in front of node ``node``'s client port, which the node
        names to clients as its address from its next start: the clients reach it only
        through the proxy, the other brokers directly. ``stop_proxies()`` after."""
        proxy = TcpProxy("127.0.0.1", self.ports(node)[0])
        proxy.start()
        self.proxies[node] = proxy
        self.advertised[node] = proxy.port
        ports = [str(self.advertised.get(n, "")) for n in range(1, self.nodes + 1)]
        self.env["KAFKA_ADVERTISED_PORTS"] = ",".join(ports)
        return proxy

    def stop_proxies(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()

    @property
    def bootstrap(self) -> str:
        return ",".join(
            f"127.0.0.1:{self.advertised.get(n, self.ports(n)[0])}"
            for n in range(1, self.nodes + 1)
        )

    async def run_node(self, command: str, node: int) -> None:
        """``kafka.sh COMMAND NODE``: start, stop (SIGTERM) or kill one node."""
        await run_script(
            ["bash", str(KAFKA_SH), command, str(node)], self.env, self.log, timeout=120
        )

    def node_pid(self, node: int) -> int:
        return int((self.directory / f"node-{node}" / "kafka.pid").read_text().strip())


class PrivatePostgres:
    """A PostgreSQL cluster of our own, run with ``pg.sh`` (as the ``postgres`` OS user
    when we are root, as ``pg.sh`` does)."""

    def __init__(self, directory: Path, log: Path) -> None:
        # PG_DIR itself, not a folder under pytest's 0700 tmp_path: pg.sh gives it to
        # the postgres user, who must be able to reach it, and the socket path is short.
        self.directory = directory
        self.port = service_port()
        self.log = log
        self.env = {**os.environ, "PG_DIR": str(directory), "PG_PORT": str(self.port)}
        self.url = f"postgresql://ingest@127.0.0.1:{self.port}/ingest"

    async def run(self, command: str) -> None:
        await run_script(["bash", str(PG_SH), command], self.env, self.log, timeout=120)

    @staticmethod
    def bin_dir() -> Path:
        """The folder of pg_ctl, found as ``pg.sh`` finds it."""
        if os.environ.get("PG_BIN"):
            return Path(os.environ["PG_BIN"])

        def version(path: Path) -> tuple[int, ...]:  # as pg.sh's `sort -V`, roughly
            return tuple(int(part) for part in path.parent.name.split(".") if part.isdigit())

        dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version)
        if not dirs:
            raise AssertionError("no PostgreSQL server binaries in /usr/lib/postgresql")
        return dirs[-1]

    async def stop(self, mode: str) -> None:
        """``pg_ctl stop -m MODE``: ``fast`` rolls back and disconnects, ``immediate``
        quits at once, leaving crash recovery to the next start."""
        if mode == "fast":
            await self.run("stop")  # pg.sh stop is a fast shutdown
            return
        pg_ctl = [str(self.bin_dir() / "pg_ctl"), "stop", "-D", str(self.directory / "data")]
        pg_ctl += ["-m", mode, "-w", "-t", "60"]
        as_pg = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        await run_script(as_pg + pg_ctl, self.env, self.log, timeout=90)

    def server_log(self, lines: int = 30) -> str:
        path = self.directory / "logs" / "postgres.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.asynccontextmanager
async def private_postgres(log_dir: Path, **env: str) -> AsyncIterator[PrivatePostgres]:
    """A ``PrivatePostgres`` started (``env``: more of ``pg.sh``'s variables), then
    stopped and removed."""
    # PG_DIR itself is out of pytest's 0700 tmp_path: see PrivatePostgres.
    directory = Path(tempfile.mkdtemp(prefix="ingest-private-pg-"))
    cluster = PrivatePostgres(directory, log_dir / "pg-script.log")
    cluster.env.update(env)
    try:
        await cluster.run("start")
        yield cluster
    finally:
        try:
            await cluster.run("stop")
        finally:
            shutil.rmtree(directory, ignore_errors=True)


async def query(url: str, sql: str, *args: Any, timeout: float = 10) -> list[asyncpg.Record]:
    """One query on a connection of its own (a pool's would not outlive a restart)."""
    conn = await asyncpg.connect(url, timeout=timeout)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args, timeout=timeout)
        return rows
    finally:
        await conn.close()


async def records_in(bootstrap: str, topic: str, partitions: int = 1) -> int:
    """How many records ``topic`` holds (the sum of its partitions' end offsets)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    return int(sum(ends.values()))


async def under_replicated(bootstrap: str) -> list[str]:
    """The partitions of the cluster (every topic, internal ones too) whose in-sync
    replicas are fewer than their replicas, as ``topic/partition``: a broker's copies
    have caught up once it is empty."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        topics = await admin.describe_topics()
    finally:
        await admin.close()
    return [
        f"{topic['topic']}/{partition['partition']}"
        for topic in topics
        for partition in topic["partitions"]
        if len(partition["isr"]) < len(partition["replicas"])
    ]


async def stable_group(bootstrap: str, group: str, members: int) -> bool:
    """Whether the consumer group is Stable with ``members`` members (each holds partitions)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    described = response.groups[0]
    return bool(described[2] == "Stable" and len(described[5]) == members)


# --------------------------------------------------------------------- proxy ----


class TcpProxy:
    """Forwards connections on ``127.0.0.1:port`` to a backend, and breaks them on demand.

    * ``cut()`` resets every connection it carries (RST, as a crashed peer or a
      network fault does) and resets new ones at once until ``restore()``.
    * ``freeze()`` makes every open connection silent for good, as when the peer's
      host vanished without a word (power loss, a frozen VM, a firewall dropping the
      connection's state): nothing more passes either way and nothing is closed.
      New connections are forwarded as usual.
    """

    def __init__(self, backend_host: str, backend_port: int) -> None:
        self.backend = (backend_host, backend_port)
        self.port = 0
        self.accepted = 0  # connections forwarded to the backend
        self.dropped = 0  # connections reset by cut() or frozen by freeze()
        self.refused = 0  # connections reset on arrival while cut
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy")
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._frozen: list[_Link] = []
        self._cut = False

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    def cut(self) -> int:
        """Reset every open connection, and refuse new ones; returns how many were reset."""
        return int(self._call(self._cut_all()))

    def freeze(self) -> int:
        """Silence every open connection for good; returns how many."""
        return int(self._call(self._freeze_all()))

    def restore(self) -> None:
        self._call(self._restore())

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._close(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, coroutine: Awaitable[Any], timeout: float = 5) -> Any:
        async def wrapped() -> Any:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            self.refused += 1
            _reset(writer.transport)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.backend)
        except OSError:
            _reset(writer.transport)
            return
        self.accepted += 1
        link = _Link(
            [writer.transport, up_writer.transport],
            [
                asyncio.ensure_future(_pump(reader, up_writer)),
                asyncio.ensure_future(_pump(up_reader, writer)),
            ],
        )
        self._links.add(link)
        try:
            await asyncio.wait(link.pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._links.discard(link)
            link.stop_pumps()
            if not link.frozen:
                for transport in link.transports:
                    transport.close()

    async def _cut_all(self) -> int:
        self._cut = True
        links = list(self._links)
        for link in links:
            self._links.discard(link)
            link.stop_pumps()
            for transport in link.transports:
                _reset(transport)
        self.dropped += len(links)
        return len(links)

    async def _freeze_all(self) -> int:
        links = list(self._links)
        for link in links:
            link.frozen = True
            self._links.discard(link)
            self._frozen.append(link)
            link.stop_pumps()
        self.dropped += len(links)
        return len(links)

    async def _restore(self) -> None:
        self._cut = False

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut_all()
        for link in self._frozen:
            for transport in link.transports:
                _reset(transport)


@dataclass(eq=False)
class _Link:
    """One forwarded connection: the client's and the backend's transports, two pumps."""

    transports: list[asyncio.BaseTransport]
    pumps: list[asyncio.Future[None]]
    frozen: bool = False

    def stop_pumps(self) -> None:
        for pump in self.pumps:
            pump.cancel()
        if self.frozen:  # read nothing more: the peers' bytes pile up unanswered
            for transport in self.transports:
                if isinstance(transport, asyncio.ReadTransport):
                    transport.pause_reading()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


def _reset(transport: asyncio.BaseTransport) -> None:
    """Close with an RST instead of a FIN: the peer reads 'connection reset'."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()
    else:
        transport.close()


# ---------------------------------------------------------------------- load ----


@dataclass(frozen=True)
class Acked:
    kind: str  # "event" or "customer"
    key: str  # the event's message id (its events.id), or the customer's email
    acked_at: float  # wall clock, comparable with PostgreSQL's timestamps


@dataclass
class Load:
    """Small batches to ``POST /api/1.0/batch`` from ``senders`` concurrent clients.

    Every item carries a unique ``seq`` (in the event body, or as the customer's
    attribute; each customer item names a new customer). Outcomes per item:
    ``acked`` (2xx and ``accepted``), ``refused`` (503), ``unknown`` (no answer).
    """

    base_url: str
    api_key: str
    senders: int = 4
    batch: int = 6
    pause_s: float = 0.02
    timeout_s: float = 15.0
    keepalive: bool = True  # off: a new connection per request, spread over the workers
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    acked: dict[int, Acked] = field(default_factory=dict)
    refused: set[int] = field(default_factory=set)
    unknown: set[int] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)  # any answer but 200 and 503
    rejected: list[str] = field(default_factory=list)  # items the gateway refused
    ack_times: list[float] = field(default_factory=list)  # one per 2xx answer
    kinds: dict[int, str] = field(default_factory=dict)
    # A reader beside the writers: reads need PostgreSQL (the batch endpoint only for
    # its cached key lookup), so they show what the gateway answers while it is down.
    read_statuses: Counter[int] = field(default_factory=Counter)
    read_errors: Counter[str] = field(default_factory=Counter)
    unexpected_reads: list[str] = field(default_factory=list)
    # 503 answers (to writes or reads) without the Retry-After header clients need.
    without_retry_after: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._seq = itertools.count(1)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    def acked_since(self, since: float) -> dict[int, Acked]:
        return {seq: a for seq, a in self.acked.items() if a.acked_at >= since}

    def check(self) -> None:
        """Raise what made a sender stop, if one did (a bug in the load, not the pipeline)."""
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                task.result()

    def start(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self.timeout_s,
            headers={"X-API-KEY": self.api_key},
            limits=httpx.Limits(
                max_connections=self.senders + 1,
                max_keepalive_connections=self.senders + 1 if self.keepalive else 0,
            ),
            event_hooks={"response": [self._note_retry_after]},
        )
        self._tasks = [asyncio.create_task(self._send_loop()) for _ in range(self.senders)]
        self._tasks.append(asyncio.create_task(self._read_loop()))

    async def stop(self) -> None:
        """Stop sending; requests in flight are answered (or time out) first."""
        self._stop.set()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            if self._client is not None:
                await self._client.aclose()

    async def _note_retry_after(self, response: httpx.Response) -> None:
        if response.status_code == 503 and "retry-after" not in response.headers:
            self.without_retry_after.append(f"{response.request.method} {response.request.url}")

    def _items(self) -> list[tuple[int, dict[str, Any]]]:
        items = []
        for _ in range(self.batch):
            seq = next(self._seq)
            if seq % 3 == 0:
                item: dict[str, Any] = {
                    "type": "customer",
                    "email": f"c{seq}-{self.tag}@faults.example",
                    "attributes": {"seq": seq},
                }
                self.kinds[seq] = "customer"
            else:
                # A few customers get many events: ordered per partition, merged per person.
                item = {
                    "type": "event",
                    "email": f"p{seq % 17}-{self.tag}@faults.example",
                    "eventName": "fault_load",
                    "body": {"seq": seq},
                }
                self.kinds[seq] = "event"
            items.append((seq, item))
        return items

    async def _send_loop(self) -> None:
        assert self._client is not None
        while not self._stop.is_set():
            items = self._items()
            seqs = [seq for seq, _ in items]
            try:
                response = await self._client.post(
                    "/api/1.0/batch", json={"items": [item for _, item in items]}
                )
            except httpx.TransportError as exc:  # timeouts too: the outcome is unknown
                self.errors[type(exc).__name__] += 1
                self.unknown.update(seqs)
                await asyncio.sleep(0.1)
                continue
            self.statuses[response.status_code] += 1
            if response.status_code == 200:
                now = time.time()
                self.ack_times.append(now)
                for (seq, item), result in zip(items, response.json()["items"], strict=True):
                    if result["status"] != "accepted":
                        self.rejected.append(f"{item}: {result}")
                        continue
                    key = result["id"] if item["type"] == "event" else item["email"]
                    self.acked[seq] = Acked(item["type"], key, now)
                await asyncio.sleep(self.pause_s)
            elif response.status_code == 503:
                self.refused.update(seqs)
                await asyncio.sleep(0.1)  # a client told to retry backs off a little
            else:
                self.unexpected.append(f"{response.status_code}: {response.text[:300]}")
                self.unknown.update(seqs)
                await asyncio.sleep(0.1)

    async def _read_loop(self) -> None:
        assert self._client is not None
        while not self._stop.is_set():
            try:
                response = await self._client.get("/api/1.0/customers?itemsPerPage=1")
            except httpx.TransportError as exc:
                self.read_errors[type(exc).__name__] += 1
            else:
                self.read_statuses[response.status_code] += 1
                if response.status_code not in (200, 503):
                    self.unexpected_reads.append(f"{response.status_code}: {response.text[:300]}")
            await asyncio.sleep(0.1)


# --------------------------------------------------------------------- audit ----

STORED_SQL = """
SELECT (body->>'seq')::bigint AS seq, 'event' AS kind, count(*) AS n,
       min(id::text) AS key, max(stored_at) AS stored_at
  FROM events WHERE team_id = $1 AND body ? 'seq' GROUP BY 1
UNION ALL
SELECT (c.attributes->>'seq')::bigint, 'customer', count(*), min(i.value), max(c.created_at)
  FROM customers c
  LEFT JOIN customer_identifiers i ON i.customer_id = c.id AND i.kind = 'email'
 WHERE c.team_id = $1 AND c.attributes ? 'seq' GROUP BY 1
"""


@dataclass(frozen=True)
class Stored:
    kind: str
    copies: int
    key: str | None
    stored_at: float


async def stored(url: str, team_id: int) -> dict[int, Stored]:
    """Every load item PostgreSQL holds for the team, by seq; ``copies`` > 1 is a duplicate."""
    found: dict[int, Stored] = {}
    for row in await query(url, STORED_SQL, team_id):
        seq = int(row["seq"])
        previous = found.get(seq)
        copies = int(row["n"]) + (previous.copies if previous else 0)
        found[seq] = Stored(row["kind"], copies, row["key"], row["stored_at"].timestamp())
    return found


@dataclass
class Report:
    """What one fault did to the load, for docs/operations.md, "What survives what"."""

    fault: str
    requests: int
    acked: int
    responses_503: int
    unknown_requests: int
    refused_items_stored: int  # items of 503 answers found stored anyway
    unknown_items_stored: int
    longest_ack_gap_s: float  # longest stretch without any 2xx answer
    max_apply_lag_s: float  # longest from a 2xx answer until its write was stored
    resumed_after_s: float  # from the fault's start until the pipeline was caught up
    fault_s: float  # from the fault's start until its cause was removed
    reads: dict[int, int] = field(default_factory=dict)  # status: count, of the reader
    read_errors: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"FAULT {self.fault}: {self.requests} requests, {self.acked} writes acknowledged, "
            f"{self.responses_503} x 503, {self.unknown_requests} unknown "
            f"(stored anyway: {self.refused_items_stored} refused items, "
            f"{self.unknown_items_stored} unknown items); fault lasted {self.fault_s:.1f} s; "
            f"longest gap without a 2xx {self.longest_ack_gap_s:.1f} s; "
            f"max ack-to-stored {self.max_apply_lag_s:.1f} s; "
            f"caught up {self.resumed_after_s:.1f} s after the fault began; "
            f"reads {self.reads}, {self.read_errors} unanswered"
            + (f"; {'; '.join(self.notes)}" if self.notes else "")
        )


LAG_OK_S = 2.0  # a write stored within this of its acknowledgement: the pipeline keeps up


def summarize(
    fault: str, load: Load, found: Mapping[int, Stored], fault_start: float, fault_end: float
) -> Report:
    lags = {seq: found[seq].stored_at - a.acked_at for seq, a in load.acked.items()}
    # The pipeline is caught up once the gateway acknowledges again and every write
    # acknowledged around the fault is stored within LAG_OK_S.
    behind = [
        found[seq].stored_at
        for seq, lag in lags.items()
        if lag > LAG_OK_S and load.acked[seq].acked_at >= fault_start - 10
    ]
    acks_after = [t for t in load.ack_times if t >= fault_start]
    times = sorted(load.ack_times)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    first_ack_after = min(acks_after, default=fault_start)
    gap_end = first_ack_after if first_ack_after - fault_start > LAG_OK_S else fault_start
    caught_up = max([gap_end, *behind])
    return Report(
        fault=fault,
        requests=load.requests,
        acked=len(load.acked),
        responses_503=load.statuses[503],
        unknown_requests=sum(load.errors.values()) + len(load.unexpected),
        refused_items_stored=len(load.refused & found.keys()),
        unknown_items_stored=len(load.unknown & found.keys()),
        longest_ack_gap_s=max(gaps, default=0.0),
        max_apply_lag_s=max(lags.values(), default=0.0),
        resumed_after_s=max(0.0, caught_up - fault_start),
        fault_s=fault_end - fault_start,
        reads=dict(sorted(load.read_statuses.items())),
        read_errors=sum(load.read_errors.values()),
    )


def lost_or_duplicated(load: Load, found: Mapping[int, Stored]) -> list[str]:
    """Every way the store disagrees with what the gateway acknowledged."""
    problems = []
    for seq, acked in sorted(load.acked.items()):
        s = found.get(seq)
        if s is None:
            problems.append(f"lost: {acked}")
        elif s.copies != 1:
            problems.append(f"stored {s.copies} times: seq {seq} {acked}")
        elif s.key != acked.key:
            problems.append(f"seq {seq} stored under {s.key}, acknowledged as {acked.key}")
    sent = set(load.kinds)
    for seq, s in sorted(found.items()):
        if seq not in load.acked and s.copies != 1:
            problems.append(f"an unacknowledged write stored {s.copies} times: seq {seq}")
        if seq not in sent:
            problems.append(f"stored but never sent: seq {seq}")
    return problems
