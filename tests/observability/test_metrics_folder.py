"""The Prometheus multiprocess folder of a run is removed when the server stops cleanly.

run.py gives each run its own ``/tmp/pnp-prometheus-*`` folder (its gunicorn
workers write their metric files there, named after their pids). A stop by
ctrl+c (SIGINT to the terminal's process group) or SIGTERM must leave nothing
behind; SIGKILL cannot run any clean-up and is not tested here.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import ServerProcess, child_pids


def _folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("pnp-prometheus-*"))


def _metrics_folder(server: ServerProcess, before: set[Path]) -> Path:
    """This server's folder: a new one (not in ``before``: folders left by SIGKILLed servers may
    hold files of reused pids) with metric files named after its master's or workers' pids."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        requests.get(server.url + "/metrics", timeout=5)
        workers = [server.proc.pid, *child_pids(server.proc.pid)]
        for folder in _folders() - before:
            try:
                names = [p.name for p in folder.iterdir()]
            except OSError:
                continue
            if any(name.endswith(f"_{pid}.db") for pid in workers for name in names):
                return folder
        time.sleep(0.3)
    raise AssertionError(f"no pnp-prometheus-* folder with files of workers {child_pids(server.proc.pid)}")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl+c"])
def test_folder_is_removed_at_a_clean_stop(start_server, stop):
    before = _folders()
    server = start_server(metrics_in_lab=False)  # run.py makes its own folder, as for an operator
    folder = _metrics_folder(server, before)
    assert folder.is_dir()
    os.killpg(server.proc.pid, stop)
    assert server.proc.wait(30) == 0, server.output()[-2000:]
    assert not folder.exists(), f"{folder} left behind: {list(folder.iterdir())}"
