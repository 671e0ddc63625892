"""``make run`` as root from a clone the ``postgres`` user cannot reach (issue #19, point 6).

As root, ``deploy/postgres/pg.sh`` runs the cluster as ``postgres``; a clone in
root's home (mode 0700, as on a fresh VM or in a container) is out of its reach.
The script then places the cluster in ``/var/lib/ingest-pg/<clone id>``, links
``.local/pg`` to it and says so, instead of stopping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pipeline.fault_support import service_port
from tests.support import REPO

pytestmark = pytest.mark.skipif(
    os.getuid() != 0, reason="only root runs PostgreSQL as another user"
)


@dataclass(frozen=True)
class Clone:
    """The deploy scripts in a folder only root may enter, and a port of their own."""

    root: Path
    port: int

    def pg(self, command: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PG_DIR", "DATABASE_URL")}
        return subprocess.run(
            ["bash", str(self.root / "deploy" / "postgres" / "pg.sh"), command],
            env={**env, "PG_PORT": str(self.port)},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Clone]:
    home = tmp_path / "root-home"
    shutil.copytree(REPO / "deploy", home / "clone" / "deploy")
    home.chmod(0o700)
    made = Clone(home / "clone", service_port())
    yield made
    link = made.root / ".local" / "pg"
    if link.is_symlink():
        made.pg("stop")
        shutil.rmtree(link.readlink(), ignore_errors=True)


def test_postgres_starts_where_postgres_can_reach_it_and_says_where(clone: Clone) -> None:
    reach = ["runuser", "-u", "postgres", "--", "test", "-x", str(clone.root)]
    assert subprocess.run(reach, check=False).returncode != 0, "postgres must not reach the clone"

    started = clone.pg("start")
    assert started.returncode == 0, started.stderr
    link = clone.root / ".local" / "pg"
    assert link.is_symlink() and link.readlink().parent == Path("/var/lib/ingest-pg")
    assert f"the cluster lives in {link.readlink()}" in started.stderr
    assert (link.readlink() / "data" / "PG_VERSION").is_file()
    # Found again through the link: status and a second start see the same cluster.
    assert clone.pg("status").returncode == 0
    again = clone.pg("start")
    assert again.returncode == 0 and "already running" in again.stderr, again.stderr
