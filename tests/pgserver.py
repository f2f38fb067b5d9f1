"""A real PostgreSQL server on 127.0.0.1 for the catalog tests: a temporary data directory, a free port, a
password, stopped and removed at the end. It runs as the ``postgres`` system user when the tests run as root
(the server refuses to run as root). Debian's ``postgresql`` package provides it; ``scripts/test.sh``
installs it on a fresh machine.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PgServer", "find_bin", "jdbc_driver"]

#: Where Debian's libpostgresql-jdbc-java puts the driver.
JDBC_JAR = Path("/usr/share/java/postgresql.jar")


def find_bin() -> Path | None:
    """The directory of the newest installed server's programs (pg_ctl, initdb), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def jdbc_driver() -> Path | None:
    """The PostgreSQL JDBC driver jar, or None when it is not installed."""
    return JDBC_JAR if JDBC_JAR.exists() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """One server: ``start()``, then ``stop()`` / ``start()`` again (the same data), ``remove()`` at the end."""

    bindir: Path
    root: Path
    port: int
    user: str = "sp_catalog"
    password: str = "pw-Planted-7f3c"
    database: str = "iceberg"

    @classmethod
    def create(cls, bindir: Path) -> PgServer:
        """A new cluster in a temporary directory, with a login role and a database, not yet started."""
        root = Path(tempfile.mkdtemp(prefix="sp-pg-"))
        server = cls(bindir, root, _free_port())
        os.chmod(root, 0o755)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        pwfile = root / "superuser.pw"
        pwfile.write_text("super\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        server._as_server([str(bindir / "initdb"), "-D", str(server.data), "-U", "postgres", "-A", "md5",
                           "--pwfile", str(pwfile), "-E", "UTF8", "--no-sync"])
        server.start()
        server.psql(f"CREATE ROLE {server.user} LOGIN PASSWORD '{server.password}'")
        server.psql(f"CREATE DATABASE {server.database} OWNER {server.user}")
        return server

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def uri(self) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{self.database}"

    def _as_server(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} " \
                  "-c fsync=off -c max_connections=200"
        self._as_server([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                         "-o", options, "-w", "-t", "60", "start"])

    def stop(self) -> None:
        """Stop the server at once (open connections are cut, as when the catalog's host goes away)."""
        self._as_server([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def running(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run one statement as the superuser; its output."""
        env = {**os.environ, "PGPASSWORD": "super"}
        out = subprocess.run([str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                              "-d", database, "-At", "-c", sql], check=True, capture_output=True, text=True,
                             env=env, timeout=60)
        return out.stdout

    def remove(self) -> None:
        """Stop the server if it runs and delete its directory."""
        if self.running():
            with contextlib.suppress(subprocess.CalledProcessError):
                self.stop()
        for _ in range(20):
            shutil.rmtree(self.root, ignore_errors=True)
            if not self.root.exists():
                return
            time.sleep(0.1)
