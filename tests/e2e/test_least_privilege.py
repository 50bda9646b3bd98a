"""Least privilege: ``sudo python3 run.py`` with RUN_AS drops root in the workers.

Runs only as root (as CI does). The lab is copied to a world-traversable
folder (pytest's tmp folders are 0700, which ``nobody`` could not enter). The
test checks /proc/<pid>/status of every gunicorn worker (Uid/Gid of the
configured user), that a device still provisions (SQLite and logs/ writable
after the chown done by run.py), and that an unwritable SQLite folder is
refused with a one-line reason instead of failing later.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from simulator import SimulatedDevice
from tests.helpers import ServerProcess, assert_finished, child_pids, free_port

pytestmark = [pytest.mark.root]


@pytest.fixture(autouse=True)
def _needs_root():
    if os.geteuid() != 0:
        pytest.fail("dropping privileges needs root: run the tests as root, or deselect: -m 'not root'")
USER = "nobody"


def _ids(pid: int) -> tuple[int, int]:
    status = (Path("/proc") / str(pid) / "status").read_text().splitlines()
    uid = next(line for line in status if line.startswith("Uid:")).split()
    gid = next(line for line in status if line.startswith("Gid:")).split()
    groups = next(line for line in status if line.startswith("Groups:")).split()[1:]
    assert len(set(uid[1:])) == 1 and len(set(gid[1:])) == 1, f"real/effective/saved differ: {uid} {gid}"
    if int(uid[1]) != 0:
        assert "0" not in groups, f"worker kept the root group: {groups}"
    return int(uid[1]), int(gid[1])


@pytest.fixture
def open_lab(lab):
    root = Path(tempfile.mkdtemp(prefix="pnp-lp-"))
    root.chmod(0o755)
    shutil.copytree(lab, root / "lab")
    (root / "lab").chmod(0o755)
    (root / "lab" / "db").mkdir()
    yield root / "lab"
    shutil.rmtree(root, ignore_errors=True)


def _readable_by_others(path: Path) -> bool:
    """Every folder from / to ``path`` can be entered by any user (o+x)."""
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


PYTHON_READABLE = _readable_by_others(Path(os.__file__).parent)


@pytest.mark.e2e
def test_workers_run_as_configured_user(open_lab):
    user = pwd.getpwnam(USER)
    os.chown(open_lab / "db", user.pw_uid, user.pw_gid)  # the operator's one chown (docs)
    db = f"sqlite:///{open_lab / 'db' / 'pnp.sqlite3'}"
    server = ServerProcess(open_lab, free_port(), db, RUN_AS=USER, WORKERS=2)
    server.start(wait_hello=PYTHON_READABLE)
    try:
        deadline = time.monotonic() + 60
        while len(workers := child_pids(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 2, server.log.read_text()[-2000:]
        assert _ids(server.proc.pid) == (0, 0)  # the master keeps root (it only binds/supervises)
        # a forked worker switches user in its init (after gevent's monkey-patching): wait for it
        while any(_ids(pid) != (user.pw_uid, user.pw_gid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in workers:
            assert _ids(pid) == (user.pw_uid, user.pw_gid)
        if not PYTHON_READABLE:
            # Not a skip: the uids above are checked. The request path needs an interpreter that
            # USER can read (lazy stdlib imports): Debian's python3 in the project's .venv is one;
            # a Python under /root (pyenv) is not, and there the check ends here.
            print(f"request path not driven: {Path(os.__file__).parent} is not readable by {USER}")
            return
        dev = SimulatedDevice(server.url, "FGL2548P001", reload_seconds=0.3)
        result = {}
        t = threading.Thread(target=lambda: result.__setitem__(dev.serial, dev.run(timeout=90)))
        t.start()
        t.join()
        assert_finished(server.url, db, [dev], result)
        log = open_lab / "logs" / "pnp_debug.log"
        assert log.stat().st_uid == user.pw_uid and "FGL2548P001" in log.read_text()
        assert (open_lab / "db" / "pnp.sqlite3").stat().st_uid == user.pw_uid
        assert "Workers run as          : nobody" in server.log.read_text()
    finally:
        server.stop()


def test_unwritable_sqlite_folder_is_refused(open_lab):
    db = f"sqlite:///{open_lab / 'db' / 'pnp.sqlite3'}"  # db/ stays root-owned 0755
    server = ServerProcess(open_lab, free_port(), db, RUN_AS=USER)
    server.start(expect_exit=True)
    server.proc.wait(30)
    out = server.log.read_text()
    assert server.proc.returncode == 2
    assert "cannot start: RUN_AS nobody: SQLite needs" in out and "sudo chown nobody" in out


def test_unknown_user_is_refused(open_lab):
    server = ServerProcess(open_lab, free_port(), f"sqlite:///{open_lab / 'pnp.sqlite3'}",
                           RUN_AS="no-such-user-pnp")
    server.start(expect_exit=True)
    server.proc.wait(30)
    assert "RUN_AS user 'no-such-user-pnp' does not exist" in server.log.read_text()
