"""A real PostgreSQL cluster on a free local port, run as an unprivileged user, for tests."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from coldchain.demo import free_port

# Debian's packages put the server programs here, off the PATH.
_BIN_DIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)


def _program(name: str) -> str:
    for directory in _BIN_DIRS:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed: apt-get install postgresql (.ci/run does)"
        )
    return found


class Postgres:
    """initdb + pg_ctl in a work folder; root runs them as the `postgres` system user."""

    # Tests want speed, not durability: a crashed test cluster is thrown away anyway.
    SETTINGS = {
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
    }

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.data = workdir / "data"
        self.sockets = workdir / "sockets"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            # The server refuses to run as root.
            self.as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> Postgres:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if self.as_user:
            owner = pwd.getpwnam("postgres")
            for path in (self.workdir, self.sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._run(
            _program("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 " + " ".join(
            f"-c {key}={value}" for key, value in self.SETTINGS.items()
        )
        self._run(
            _program("pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.workdir / "server.log"), "-w", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                [*self.as_user, _program("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                 "stop"],
                capture_output=True,
                timeout=120,
            )  # fmt: skip
