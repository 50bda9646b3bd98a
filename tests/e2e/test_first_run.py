"""First run as a new user does it: the README's first command, ``run.py demo``, the project's .venv.

* ``run.py demo`` (real process, real gunicorn, real simulator) provisions its
  devices through all 13 steps, the dashboard shows them to the login the
  banner prints, the server keeps serving, and a second run works as well;
* the README's first command, run for real with Debian's own python3
  (``/usr/bin/python3``, which refuses system-wide ``pip install``): it creates
  ``.venv`` in a copy of the project, installs the lock file and runs the demo;
  ``python3 run.py`` re-executes itself under that ``.venv`` (one line), and says
  in one line how to create it when it is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import ROOT, free_port

DEBIAN_PYTHON = Path("/usr/bin/python3")
pytestmark = pytest.mark.e2e


class Run:
    """A long-running command whose output is collected by a thread; ``wait_for`` a line."""

    def __init__(self, args, cwd, env=None):
        self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.output)
            if m:
                return m
            if self.proc.poll() is not None:
                time.sleep(0.3)  # the last lines
                m = re.search(pattern, self.output)
                if m:
                    return m
                raise AssertionError(f"exited {self.proc.returncode} before {pattern!r}:\n{self.output[-4000:]}")
            time.sleep(0.3)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.output[-4000:]}")

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        return self.proc.returncode


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PNP_") and k != "DATABASE_URL"}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def _dashboard(url: str, user: str, password: str) -> str:
    session = requests.Session()
    session.trust_env = False
    form = session.get(f"{url}/login", timeout=10).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form) or \
        re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token, form[:500]
    session.post(f"{url}/login", data={"user": user, "password": password, "csrf_token": token.group(1)},
                 timeout=10)
    page = session.get(f"{url}/dashboard", timeout=10)
    assert page.status_code == 200 and "/login" not in page.url, page.url
    return page.text


def _finished_demo(run: Run, devices: int) -> tuple[str, str, str]:
    """Wait for the banner and the simulator's summary; ``(url, user, password)``."""
    login = run.wait_for(r"Dashboard\s+: (http://127\.0\.0\.1:\d+)/dashboard \(login (\w+) / (\S+)\)", 120)
    run.wait_for(rf"{devices}/{devices} finished in", 240)
    run.wait_for(r"demo: the server keeps serving", 10)
    return login.group(1), login.group(2), login.group(3)


def test_demo_provisions_all_steps_and_runs_twice(tmp_path):
    folder = tmp_path / "demo"
    args = [sys.executable, str(ROOT / "run.py"), "demo", "-n", "2", "--time-scale", "0.2",
            "--folder", str(folder)]
    first = Run([*args, "--port", str(free_port())], cwd=tmp_path, env=_env())
    try:
        url, user, password = _finished_demo(first, 2)
        out = first.output
        assert "Bind to IP-address      : 127.0.0.1" in out and "Steps skipped           : none" in out
        assert re.search(r"c1100-universalk9\.17\.12\.03a\.SPA\.bin \(17\.12\.3a, md5 [0-9a-f]{32}", out)
        for step in ("cli-config config-register", "image-install c1100-universalk9.17.12.03a.SPA.bin",
                     "file-transfer guestshell.17.09.01a.tar", "file-transfer pxs.py", "config-upgrade default.cfg",
                     "event manager run InstallGuestShell", "show app-hosting list", "guestshell run python3"):
            assert f"DEMO00000    cli-exec {step}" in out or f"DEMO00000    {step}" in out, step
        page = _dashboard(url, user, password)
        assert "DEMO00000" in page and "DEMO00001" in page and page.count("FINISHED") >= 2
        assert requests.get(f"{url}/pnp/HELLO", timeout=5).status_code == 200  # still serving
        second = Run([*args, "--port", str(free_port())], cwd=tmp_path, env=_env())
        try:
            url2, _, password2 = _finished_demo(second, 2)
            assert password2 == password  # the same login as the first run
            assert "DEMO00000    cli-config config-register 0x2102" in second.output  # provisioned again
        finally:
            assert second.stop() == 0, second.output[-2000:]
    finally:
        assert first.stop(signal.SIGINT) == 0, first.output[-2000:]
    assert not list((folder / "images").glob(".*.part"))


def _project_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def _readme_first_command() -> str:
    """The first ```bash block of README.md, without its apt-get part (python3-venv is installed here)."""
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1).strip()
    assert "python3 -m venv .venv" in block and "requirements.lock" in block and "run.py demo" in block
    return re.sub(r"^.*apt-get install -y [\w. -]+&& ", "", block)


def test_readme_first_command_with_debians_python(tmp_path):
    assert DEBIAN_PYTHON.exists(), "Debian's python3 is needed (apt-get install -y python3 python3-venv)"
    check = subprocess.run([str(DEBIAN_PYTHON), "-c", "import ensurepip, venv"], capture_output=True, text=True)
    assert check.returncode == 0, f"python3-venv is missing (.ci/apt/python.txt): {check.stderr}"
    project = _project_copy(tmp_path / "project")
    bin_dir = tmp_path / "bin"  # "python3" on PATH is Debian's own, as on a fresh machine
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(DEBIAN_PYTHON)
    env = _env(PATH=f"{bin_dir}:/usr/bin:/bin")

    # Without .venv, Debian's python3 (no Flask) says in one line how to create it.
    missing = subprocess.run(["python3", "run.py", "--check"], cwd=project, env=env, capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    assert "python3 -m venv" in missing.stderr and "requirements.lock" in missing.stderr

    command = _readme_first_command()
    run = Run(["bash", "-c", command.replace("run.py demo", "run.py demo -n 2 --time-scale 0.2")],
              cwd=project, env=env)
    try:
        _finished_demo(run, 2)
        assert re.search(r"run\.py: \S+ is not the project's interpreter; re-running under "
                         rf"{re.escape(str(project / '.venv' / 'bin' / 'python'))}", run.output), run.output[:3000]
    finally:
        run.stop()
    # sudo python3 run.py … with the .venv present: one line, then the command runs in the venv.
    listed = subprocess.run(["python3", "run.py", "images", "list"], cwd=project, env=env, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.count("re-running under") == 1 and len(listed.stderr.strip().splitlines()) == 1
    assert "no images in the catalogue" in listed.stdout
