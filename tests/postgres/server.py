"""A throwaway PostgreSQL cluster on a free loopback port, for tests and benchmarks.

It uses the distribution's server binaries (`initdb`, `pg_ctl`; Debian keeps them in
/usr/lib/postgresql/<version>/bin). PostgreSQL refuses to run as root, so when the tests run as
root the cluster's directory is handed to the `postgres` user and the binaries run through
`runuser`. It never touches a server the machine already runs.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

SERVICE_USER = "postgres"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_bin() -> Path | None:
    """The directory holding `initdb` and `pg_ctl` (the newest installed version), or None."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: [int(part) for part in path.split("/")[-3].split(".")])
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, reachable as superuser `postgres` without a password."""

    def __init__(self, port: int | None = None, fsync: bool = False) -> None:
        self.port = port or free_port()
        self.fsync = fsync
        self.bin = server_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="plba-pg-"))
        self.data = self.dir / "data"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            # The server runs as `postgres`, which must reach the directory through its parents.
            entry = pwd.getpwnam(SERVICE_USER)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            os.chmod(self.dir, 0o700)
            parent = self.dir.parent
            os.chmod(parent, os.stat(parent).st_mode | 0o001)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "--no-sync")

    def url(self, database: str = "postgres") -> str:
        """A postgresql:// URL for `database` on this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        """Start the server on its port and wait until it accepts connections."""
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200")
        if not self.fsync:
            options += " -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "30",
                  "-o", options, "start")
        deadline = time.monotonic() + 10
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL on port {self.port} did not start; see {self.dir}/log") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server at once (fast mode: open sessions are ended)."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")

    def restart(self) -> None:
        """Stop and start again on the same port; the data stays."""
        self.stop()
        self.start()

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, ending any session still connected to it."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self._as_root:
            command = ["runuser", "-u", SERVICE_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.dir, timeout=60)
        if result.returncode != 0:
            output = result.stderr.strip() or result.stdout.strip()
            raise RuntimeError(f"{program} failed ({result.returncode}): {output}")
