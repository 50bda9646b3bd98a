"""The rules around the first run: no passing by skipping, a set-up that stops on apt errors,
lock files that pin every requirement, a README that lists every state.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from app.ops.lifecycle import ZTP_PROGRESS
from app.pnp.workflow import State
from tests.helpers import ROOT


def _pytest(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess:
    test = tmp_path / "test_probe.py"
    test.write_text(source)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                           "--rootdir", str(tmp_path), "-c", str(ROOT / "pyproject.toml"), str(test), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_a_skip_fails_the_run_and_a_marker_deselects(tmp_path):
    source = ("import pytest\n\n@pytest.mark.mariadb\ndef test_needs_db():\n"
              "    pytest.skip('MariaDB not reachable')\n\ndef test_plain():\n    assert True\n")
    proc = _pytest(tmp_path, source)
    assert proc.returncode == 1, proc.stdout
    assert "skipped, which counts as a failure here: MariaDB not reachable" in proc.stdout
    assert "1 failed, 1 passed" in proc.stdout
    proc = _pytest(tmp_path, source, "-m", "not mariadb")
    assert proc.returncode == 0 and "1 passed, 1 deselected" in proc.stdout, proc.stdout


def test_setup_machine_stops_with_the_apt_error(tmp_path):
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / ".ci" / "apt").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "setup-machine.sh", project / "tests" / "setup-machine.sh")
    (project / ".ci" / "apt" / "probe.txt").write_text("pnp-no-such-package  # a comment\n")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "apt-get").write_text('#!/bin/sh\n[ "$1" = update ] && exit 0\n'
                                  'echo "E: Unable to locate package pnp-no-such-package" >&2\nexit 100\n')
    (fake / "mariadbd").write_text("#!/bin/sh\nexit 0\n")
    for name in ("apt-get", "mariadbd"):
        (fake / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "POLICY_RC_D": str(tmp_path / "policy-rc.d")}
    proc = subprocess.run(["bash", str(project / "tests" / "setup-machine.sh")], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 100, proc.stdout + proc.stderr
    assert "installing pnp-no-such-package" in proc.stdout
    assert "E: Unable to locate package pnp-no-such-package" in proc.stderr
    assert not (project / ".venv").exists(), "nothing after a failed install"
    assert not (tmp_path / "policy-rc.d").exists(), "the service guard is removed again"


def _names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_lock_files_pin_every_requirement():
    runtime, dev = _pins(ROOT / "requirements.lock"), _pins(ROOT / "requirements-dev.lock")
    assert _names(ROOT / "requirements.txt") <= runtime.keys()
    assert (_names(ROOT / "requirements-dev.txt") | _names(ROOT / "requirements.txt")
            | _names(ROOT / "requirements-mysqlclient.txt")) <= dev.keys()
    assert "mysqlclient" not in runtime, "the first command installs requirements.lock without a compiler"
    assert all(dev[name] == version for name, version in runtime.items()), "the two locks disagree"
    assert "-r requirements-dev.lock" not in (ROOT / ".ci" / "run").read_text()
    assert "requirements-dev.lock" in (ROOT / "tests" / "setup-machine.sh").read_text()
    assert (ROOT / ".ci" / "run").read_text().count("setup-machine.sh") == 1


def test_readme_states_table_lists_every_state():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("Every value of `device_state.state`"):]
    rows = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", table, re.M))
    assert rows == {s.value for s in State} | set(ZTP_PROGRESS), rows ^ ({s.value for s in State} | set(ZTP_PROGRESS))
    assert "sqlite3 pnp.sqlite3" in readme and "mariadb pnp" in readme and "devices list" in readme
