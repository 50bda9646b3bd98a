"""deploy/logrotate rotates both logs of a running server with the machine's real logrotate:
pnp_debug.log and access.log are rotated (copytruncate) and the server goes on writing to
them, so nothing needs a restart and no line goes to a file nobody reads."""

from __future__ import annotations

import shutil
import subprocess
import time

import requests

from tests.helpers import ROOT


def test_deploy_logrotate_rotates_both_logs_of_a_running_server(start_server, lab, tmp_path):
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    server = start_server(WORKERS=1, LOG_BACKOFF_SUMMARY=0)
    logs = lab / "logs"
    assert requests.get(server.url + "/files/pxs.py", timeout=30).status_code == 200
    time.sleep(0.5)
    assert (logs / "access.log").stat().st_size > 0 and (logs / "pnp_debug.log").stat().st_size > 0
    conf = tmp_path / "pnp-server.logrotate"
    conf.write_text((ROOT / "deploy" / "logrotate").read_text().replace("/opt/pnp-server/logs", str(logs)))
    conf.chmod(0o644)
    run = subprocess.run([logrotate, "-f", "-s", str(tmp_path / "state"), str(conf)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    for name in ("access.log", "pnp_debug.log"):
        assert (logs / f"{name}.1").exists(), sorted(p.name for p in logs.iterdir())
        assert "pxs.py" in (logs / f"{name}.1").read_text(), name
    assert requests.get(server.url + "/files/pxs.py?after=rotation", timeout=30).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "after=rotation" not in (logs / "access.log").read_text(errors="replace"):
        time.sleep(0.2)
    assert "after=rotation" in (logs / "access.log").read_text(errors="replace"), "the server goes on logging"
    assert "download GET files/pxs.py" in (logs / "pnp_debug.log").read_text(errors="replace")
