"""Defaults that work together and a safe quick start.

* the EEM applet of ``configs/default.cfg`` must install the tarball the
  settings serve, or the server refuses to start with a one-line reason;
* a setting that skips a step skips every step that needs it, and the banner
  says which; with no tarball and no script a real device run finishes;
* the server binds 127.0.0.1 unless told otherwise; bound to more than loopback
  it refuses a short admin password or one from the documentation;
* ``--check`` says it is a check; an ERROR row counts the step that failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime

import pytest

from app.config import Config, applet_tarball, password_problem, validate
from app.ops.lifecycle import progress_of
from app.pnp import workflow as wf
from simulator import SimulatedDevice
from tests.helpers import ROOT, TARBALL, db_rows, write_settings

NO_APPLET = "hostname router\n!\nend\n"


def _run(lab, *args, env_extra=None, **settings):
    path = write_settings(lab / "s.py", **settings)
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("PNP_") and k != "PNP_NO_VENV") and k != "DATABASE_URL"}
    env.update(PNP_ROOT=str(lab), **(env_extra or {}))
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--settings", str(path), *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_shipped_settings_and_default_cfg_agree():
    import settings

    text = (ROOT / "configs" / "default.cfg").read_text()
    assert applet_tarball(text) == settings.GUESTSHELL_TARBALL == Config().guestshell_tarball
    assert settings.BIND == Config().bind == "127.0.0.1"


def test_applet_tarball_parsing():
    line = ' action 2.0 cli command "app-hosting install appid guestshell package bootflash:gs/x.tar"\n'
    assert applet_tarball(line) == "x.tar"
    assert applet_tarball("app-hosting install appid guestshell package flash:y.tar\n") == "y.tar"
    assert applet_tarball(NO_APPLET) is None


@pytest.mark.parametrize("tarball", ["", "guestshell.17.12.01.tar"])
def test_applet_naming_another_tarball_refuses_to_start(lab, tarball):
    if tarball:
        (lab / "files" / tarball).write_bytes(b"t")
    proc = _run(lab, "--check", SERVER_IP="192.0.2.10", GUESTSHELL_TARBALL=tarball)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("pnp-server: cannot start: configs/default.cfg: its EEM applet installs "
                           f"{TARBALL} but GUESTSHELL_TARBALL is")
    assert f"set GUESTSHELL_TARBALL = '{TARBALL}'" in line


def test_check_banner_says_it_is_a_check_and_lists_skipped_steps(lab):
    proc = _run(lab, "--check", SERVER_IP="192.0.2.10", PYTHON_SCRIPT="pxs.py")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "Settings check (--check): the settings are valid; nothing was started"
    assert "Running PnP server" not in proc.stdout and "Stop with ctrl+c" not in proc.stdout
    assert "Steps skipped           : none: all 13 run" in proc.stdout
    assert "Bind to IP-address      : 127.0.0.1 (this host only" in proc.stdout
    (lab / "configs" / "default.cfg").write_text(NO_APPLET)
    proc = _run(lab, "--check", SERVER_IP="192.0.2.10", GUESTSHELL_TARBALL="", PYTHON_SCRIPT="")
    assert proc.returncode == 0, proc.stderr
    skipped = next(line for line in proc.stdout.splitlines() if line.startswith("Steps skipped"))
    assert [part.split(" ")[0] for part in skipped.split(": ", 1)[1].split(", ")] == ["5", "6", "10", "11", "12"]


def test_skips_follow_the_settings(make_config):
    assert wf.skipped_steps(make_config()) == []
    no_tar = make_config(guestshell_tarball="")
    assert [n for n, _ in wf.skipped_steps(no_tar)] == [5, 10]
    assert [n for n, _ in wf.skipped_steps(make_config(python_script=""))] == [6, 12]
    ctx = wf.Context(now=datetime(2026, 1, 1), config=no_tar)
    from tests.pnp.test_workflow import device, wr

    decision = wf.on_work_request(device(state="RUN_EVENT_MANAGER"), wr(), ctx)
    assert decision.state == wf.State.CHECK_GUESTSHELL and decision.job.summary == "show app-hosting list"
    neither = wf.Context(now=datetime(2026, 1, 1), config=make_config(guestshell_tarball="", python_script=""))
    decision = wf.on_work_request(device(state="RUN_EVENT_MANAGER"), wr(), neither)
    assert decision.state == wf.State.FINISHED and decision.backoff_reason == "provisioning finished"


def test_device_finishes_with_neither_tarball_nor_script(lab, start_server):
    (lab / "configs" / "default.cfg").write_text(NO_APPLET)
    server = start_server(GUESTSHELL_TARBALL="", PYTHON_SCRIPT="")
    dev = SimulatedDevice(server.url, "FGL0000SKIP", reload_seconds=0.2)
    assert dev.run(timeout=90), dev.log[-5:]
    row = db_rows(f"sqlite:///{lab / 'pnp.sqlite3'}")["FGL0000SKIP"]
    assert row["state"] == "FINISHED" and row["configured"] and not row["tarball_transferred"]
    assert dev.guestshell is None and not any(f.startswith("guest-share/") for f in dev.files)


@pytest.mark.parametrize("bind,password,refused", [
    ("0.0.0.0", "change-me", "an example from the documentation"),
    ("0.0.0.0", "Long Secret", "an example from the documentation"),
    ("::", "short-pass", "has 10 characters: use at least 12"),
    ("192.0.2.10", "elevenchars", "has 11 characters"),
    ("0.0.0.0", "a-real-12-chars", None),
    ("0.0.0.0", "", None),  # no password: no login possible, nothing to guess
    ("127.0.0.1", "change-me", None),  # loopback: only this host
    ("::1", "x", None),
])
def test_exposed_bind_needs_a_real_password(bind, password, refused):
    problem = password_problem(Config(bind=bind, admin_password=password))
    if refused is None:
        assert problem is None
    else:
        assert problem and refused in problem and "\n" not in problem


def test_weak_password_on_all_addresses_refuses_in_one_line(lab):
    proc = _run(lab, "--bind", "0.0.0.0", "--port", "8080", SERVER_IP="192.0.2.10",
                env_extra={"PNP_ADMIN_PASSWORD": "change-me"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "pnp-server: cannot start: BIND 0.0.0.0 reaches other hosts and PNP_ADMIN_PASSWORD is an example from "
        "the documentation: choose your own (e.g. PNP_ADMIN_PASSWORD=$(openssl rand -base64 18))"]
    assert validate(Config.load(None, env={}, root=lab, server_ip="192.0.2.10")) == []


def test_error_rows_count_the_failed_step(make_app):
    from app.storage.db import get_sessions
    from app.storage.models import DeviceState

    assert progress_of("ERROR", "TRANSFER_TARBALL") == (5, 13)
    assert progress_of("ERROR", None) == (0, 13) and progress_of("ERROR", "bogus") == (0, 13)
    application = make_app(dashboard_public=True)
    now = datetime.utcnow()
    with application.app_context():
        with get_sessions().begin() as session:
            session.add(DeviceState(serial_number="FGL0000ERR", pid="C1111-8P", state="ERROR",
                                    failed_state="RUN_EVENT_MANAGER", last_error_message="RUN_EVENT_MANAGER: x",
                                    first_seen=now, last_contact=now))
    page = application.test_client().get("/dashboard").get_data(as_text=True)
    assert "failed at step 10 of 13 (RUN_EVENT_MANAGER)" in page
