"""The operator CLI: ``flask`` command groups (test runner) and ``run.py`` subcommands (real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from simulator import SimulatedDevice
from tests.helpers import FAST_SETTINGS, IMAGE_NAME, ROOT, write_settings


def hello(app, serial: str) -> None:
    xml = SimulatedDevice("http://127.0.0.1:9", serial).work_request_xml("CiscoPnP-1.0-T7-2")
    assert app.test_client().post("/pnp/WORK-REQUEST", data=xml, content_type="text/xml").status_code == 200


def test_devices_list_show_set_state_retry_reset_delete(app, runner):
    hello(app, "FGL0000K001")
    hello(app, "FGL0000K002")

    out = runner.invoke(args=["devices", "list"])
    assert out.exit_code == 0, out.output
    assert "FGL0000K001" in out.output and "CONFIG_REGISTER" in out.output and "Unclaimed" in out.output

    out = runner.invoke(args=["devices", "set-state", "FGL0000K001", "check_bootflash"])
    assert out.exit_code == 0 and "resumes at CHECK_BOOTFLASH" in out.output
    listed = json.loads(runner.invoke(args=["devices", "list", "--state", "CHECK_BOOTFLASH", "--json"]).output)
    assert [d["serial_number"] for d in listed["items"]] == ["FGL0000K001"]
    assert listed["items"][0]["step"] == 9

    out = runner.invoke(args=["devices", "set-state", "FGL0000K001", "NOPE"])
    assert out.exit_code == 1 and "unknown state 'NOPE'" in out.output
    out = runner.invoke(args=["devices", "set-state", "NOPE", "ERROR"])
    assert out.exit_code == 1 and "no device NOPE" in out.output

    runner.invoke(args=["devices", "set-state", "FGL0000K001", "ERROR"])
    out = runner.invoke(args=["devices", "retry", "FGL0000K001"])
    assert out.exit_code == 0 and "retries CHECK_BOOTFLASH" in out.output

    out = runner.invoke(args=["devices", "reset", "FGL0000K001"])
    assert out.exit_code == 0 and "starts over at CONFIG_REGISTER" in out.output

    out = runner.invoke(args=["devices", "show", "FGL0000K001", "--xml"])
    assert out.exit_code == 0, out.output
    assert "reset by cli" in out.output and "retry by cli" in out.output
    assert "day-0 config: default /configs/default.cfg" in out.output and "<pnp" in out.output
    lines = [line for line in out.output.splitlines() if "by cli" in line]
    assert "reset by cli" in lines[0], "events newest first"

    out = runner.invoke(args=["devices", "delete", "FGL0000K002", "--yes"])
    assert out.exit_code == 0
    assert runner.invoke(args=["devices", "show", "FGL0000K002"]).exit_code == 1


def test_inventory_import_config_render_and_claim(app, runner, lab):
    (lab / "configs" / "branch.j2").write_text("hostname {{ hostname }}\nsnmp-server location {{ site }}\n")
    good = lab / "inv.csv"
    good.write_text("serial,hostname,pid,template,site\nFGL0000I001,br-01,C1131-8PWB,branch.j2,Berlin\n")
    out = runner.invoke(args=["inventory", "import", str(good)])
    assert out.exit_code == 0 and "imported: 1 new, 0 updated" in out.output

    bad = lab / "bad.csv"
    bad.write_text("serial,hostname,template\nFGL0000I002,x,branch.j2\nbad serial!,y,\nFGL0000I002,z,\n")
    out = runner.invoke(args=["inventory", "import", str(bad)])
    assert out.exit_code == 1
    assert "line 2: FGL0000I002: template branch.j2: 'site' is undefined" in out.output
    assert "line 3: serial 'bad serial!'" in out.output and "line 4: serial FGL0000I002 repeats line 2" in out.output
    assert "nothing imported" in out.output
    assert "FGL0000I002" not in runner.invoke(args=["inventory", "list"]).output

    out = runner.invoke(args=["config", "render", "FGL0000I001"])
    assert out.exit_code == 0
    assert "hostname br-01\nsnmp-server location Berlin\n" in out.output

    (lab / "configs" / "FGL0000I001.cfg").write_text("hostname static-wins\n")
    assert "hostname static-wins" in runner.invoke(args=["config", "render", "FGL0000I001"]).output

    hello(app, "FGL0000I009")
    assert "Unclaimed" in runner.invoke(args=["devices", "list"]).output
    out = runner.invoke(args=["devices", "claim", "FGL0000I009"])
    assert out.exit_code == 0 and "claimed" in out.output
    assert "Onboarding" in runner.invoke(args=["devices", "list", "--search", "I009"]).output


def test_images_add_records_the_catalogue_entry(runner, lab, tmp_path_factory):
    import hashlib

    source = tmp_path_factory.mktemp("upload") / "isr4300-universalk9.17.09.04a.SPA.bin"
    source.write_bytes(b"x" * 4096)
    out = runner.invoke(args=["images", "add", str(source), "--pid", "ISR43*"])
    assert out.exit_code == 0, out.output
    md5 = hashlib.md5(b"x" * 4096).hexdigest()
    entry = json.loads((lab / "images" / "catalogue.json").read_text())
    assert entry == [{"pid": "ISR43*", "file": source.name, "version": "17.9.4a", "md5": md5, "size": 4096}]
    assert (lab / "images" / source.name).read_bytes() == b"x" * 4096
    listed = runner.invoke(args=["images", "list"]).output  # at once: no settings edit, no restart
    assert "ISR43*" in listed and source.name in listed and md5 in listed and "catalogue" in listed
    unknown = tmp_path_factory.mktemp("upload2") / "image.bin"
    unknown.write_bytes(b"y")
    out = runner.invoke(args=["images", "add", str(unknown), "--pid", "C11*"])
    assert out.exit_code == 1 and "give --version" in out.output


def test_images_list_and_db_upgrade(runner):
    out = runner.invoke(args=["images", "list"])
    assert out.exit_code == 0
    assert IMAGE_NAME in out.output and "17.12.3a" in out.output and str(3 * 1024 * 1024) in out.output
    assert len(out.output.split()[4]) == 32  # the md5
    out = runner.invoke(args=["db", "upgrade"])
    assert out.exit_code == 0 and "up to date" in out.output


def test_run_py_subcommands(lab):
    settings = write_settings(lab / "settings_cli.py", **FAST_SETTINGS,
                              DATABASE_URL=f"sqlite:///{lab / 'cli.sqlite3'}")
    env = {k: v for k, v in os.environ.items()
               if not (k.startswith("PNP_") and k != "PNP_NO_VENV") and k != "DATABASE_URL"}
    env["PNP_ROOT"] = str(lab)

    def run(*args):
        return subprocess.run([sys.executable, str(ROOT / "run.py"), "--settings", str(settings), *args],
                              cwd=lab, env=env, capture_output=True, text=True, timeout=120)

    upgraded = run("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    listed = run("devices", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["total"] == 0
    missing = run("devices", "show", "NOPE")
    assert missing.returncode == 1 and "no device NOPE" in missing.stderr
