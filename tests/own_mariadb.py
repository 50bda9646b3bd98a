"""A private MariaDB server for tests that stop the database (never the machine's shared one).

``OwnMariaDB(datadir, port)`` initialises a data directory with
``mariadb-install-db`` and runs ``mariadbd --no-defaults`` on 127.0.0.1:<port>
with its own socket, pid file and error log inside ``datadir``; root has no
password. ``kill()`` sends SIGKILL (a crash, InnoDB recovers at the next
start), ``stop()`` SIGTERM, ``start()`` starts it again on the same datadir
and port.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pymysql


def mariadb_binaries() -> tuple[str, str] | None:
    """Paths of mariadbd and mariadb-install-db, or None when not installed."""
    server = shutil.which("mariadbd") or (Path("/usr/sbin/mariadbd").is_file() and "/usr/sbin/mariadbd")
    install = shutil.which("mariadb-install-db")
    return (server, install) if server and install else None


class OwnMariaDB:
    """One private mariadbd process; ``url(db)`` gives the SQLAlchemy URL."""

    def __init__(self, datadir: Path, port: int) -> None:
        self.datadir, self.port = Path(datadir), port
        self.proc: subprocess.Popen | None = None
        binaries = mariadb_binaries()
        if binaries is None:
            raise RuntimeError("mariadbd / mariadb-install-db not installed")
        self.server_bin, self.install_bin = binaries

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    def install(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        subprocess.run([self.install_bin, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)

    def start(self, timeout: float = 60.0) -> None:
        log = (self.datadir / "mariadbd.out").open("a")
        self.proc = subprocess.Popen(
            [self.server_bin, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
             f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.datadir / 'mysqld.sock'}", f"--pid-file={self.datadir / 'mysqld.pid'}",
             f"--log-error={self.datadir / 'error.log'}", "--skip-log-bin",
             "--innodb-buffer-pool-size=32M", "--max-connections=300", "--skip-name-resolve"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited: {(self.datadir / 'error.log').read_text()[-2000:]}")
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=2).close()
                return
            except pymysql.err.OperationalError:
                time.sleep(0.3)
        raise RuntimeError("mariadbd did not accept connections")

    def execute(self, sql: str) -> None:
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
            conn.commit()
        finally:
            conn.close()

    def kill(self) -> None:
        """SIGKILL: the database crashes, connections drop at once."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
