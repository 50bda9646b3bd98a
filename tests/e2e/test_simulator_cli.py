"""``python3 -m simulator``: progress per device, parked devices stop polling, a summary with reasons.

The CLI runs as a real process against the real server (gunicorn on
loopback); its fault options come from the fields of ``simulator.device.Faults``.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import click
from click.testing import CliRunner

import simulator.__main__ as sim_cli
from simulator.device import Faults
from tests.helpers import ROOT, db_rows


def _simulate(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "simulator", "--url", url, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)


def test_progress_summary_and_parked_devices_stop(start_server, lab):
    server = start_server()
    proc = _simulate(server.url, "-n", "2", "--time-scale", "0.01", "--serial-prefix", "CLI",
                     "--fault-transfer-errors", "9", "--faulty", "1", "--timeout", "3")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr  # not every device finished
    assert "timeout 3 min" in out
    progress = out.split("Summary after", 1)[0]
    lines = [line for line in progress.splitlines() if " CLI00001 " in line]
    # a line per change of what the healthy device does, in workflow order
    for expected in ("cli-config config-register 0x2102", "image-install c1100-universalk9.17.12.03a.SPA.bin",
                     "reloading", "config-upgrade default.cfg", "cli-exec event manager run InstallGuestShell",
                     "FINISHED"):
        assert any(line.endswith(expected) for line in lines), (expected, out)
    failing = [line for line in progress.splitlines() if " CLI00000 " in line]
    assert any("file-transfer" in line and "failed PnP Service Error 1702" in line for line in failing), out
    # a transient error (1702) is parked with an automatic retry (ERROR_CODES in app/pnp/workflow.py)
    assert failing[-1].split(" CLI00000 ", 1)[1].strip().startswith("ERROR: error (transient): TRANSFER_TARBALL")
    summary = out.split("Summary after", 1)[1]
    assert "CLI00001" in summary and "FINISHED" in summary
    error_line = next(line for line in summary.splitlines() if "CLI00000" in line and "ERROR" in line)
    assert "File copy failed" in error_line and "automatic retry in" in error_line
    assert "1/2 finished" in summary
    rows = db_rows(f"sqlite:///{lab / 'pnp.sqlite3'}")
    assert rows["CLI00000"]["state"] == "ERROR" and rows["CLI00001"]["state"] == "FINISHED"


def test_unreachable_server_is_one_line():
    proc = _simulate("http://127.0.0.1:9", "--wait", "1")
    assert proc.returncode == 1 and "no answer from http://127.0.0.1:9/pnp/HELLO" in proc.stderr


def test_every_faults_field_is_an_option():
    help_text = CliRunner().invoke(sim_cli.main, ["--help"], terminal_width=200).output
    for f in dataclasses.fields(Faults):
        assert f"--fault-{f.name.replace('_', '-')}" in help_text, f.name


def test_a_new_faults_field_appears_by_itself(monkeypatch):
    @dataclasses.dataclass
    class MoreFaults(Faults):
        """``slow_downloads``: seconds each download stalls."""

        slow_downloads: float = 0.0
        lost_files: set[str] = dataclasses.field(default_factory=set)

    monkeypatch.setattr(sim_cli, "Faults", MoreFaults)
    seen = {}

    @click.command()
    @sim_cli.fault_options
    def probe(**values):
        seen["faults"] = sim_cli.faults_from(values)

    result = CliRunner().invoke(probe, ["--fault-slow-downloads", "2.5", "--fault-lost-files", "a.tar",
                                        "--fault-faults", "cli-exec=2", "--fault-silent-reload"])
    assert result.exit_code == 0, result.output
    faults = seen["faults"]
    assert isinstance(faults, MoreFaults) and faults.slow_downloads == 2.5 and faults.lost_files == {"a.tar"}
    assert faults.faults == {"cli-exec": 2} and faults.silent_reload is True
    assert CliRunner().invoke(probe, []).exit_code == 0 and seen["faults"] is None


def test_default_timeout_fits_the_fleet():
    assert sim_cli.default_timeout_minutes(1, 1.0) == 12
    assert sim_cli.default_timeout_minutes(20, 0.01) == 3 and sim_cli.default_timeout_minutes(101, 0.01) == 5
    assert sim_cli.default_timeout_minutes(1000, 0.01) > sim_cli.default_timeout_minutes(10, 0.01)
