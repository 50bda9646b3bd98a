"""run.py: refuses bad settings in one line, prints the banner; the md5 catalogue cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from app.config import Config, resolve_catalogue
from tests.helpers import IMAGE_NAME, ROOT, write_settings


def _run(lab, *args, **settings):
    path = write_settings(lab / "s.py", **settings)
    env = {k: v for k, v in os.environ.items()
               if not (k.startswith("PNP_") and k != "PNP_NO_VENV") and k != "DATABASE_URL"}
    env["PNP_ROOT"] = str(lab)
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--settings", str(path), *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_refuses_without_server_ip(lab):
    proc = _run(lab, "--check", PORT=8080)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].startswith("pnp-server: cannot start: SERVER_IP is not set")


def test_refuses_missing_image_and_file(lab):
    proc = _run(lab, "--check", SERVER_IP="192.0.2.10",
                IMAGES=[{"pid": "C11*", "file": "missing.bin", "version": "17.12.3a"}],
                GUESTSHELL_TARBALL="nope.tar")
    assert proc.returncode == 2
    assert "image missing.bin (for PID C11*) is missing" in proc.stderr
    assert "GUESTSHELL_TARBALL nope.tar is missing" in proc.stderr


def test_settings_typo_is_one_line(lab):
    (lab / "s.py").write_text("SERVER_IP = \n")
    env = {**os.environ, "PNP_ROOT": str(lab)}
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "--settings", str(lab / "s.py")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "SyntaxError" in proc.stderr


def test_banner_and_flag_overrides(lab):
    proc = _run(lab, "--check", "--server-ip", "192.0.2.10", "--port", "8080",
                IMAGES=[{"pid": "C11*", "file": IMAGE_NAME, "version": "17.12.3a"}], PYTHON_SCRIPT="pxs.py")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Option 43 (Cisco PnP)   : 5A1N;B2;K4;I192.0.2.10;J8080" in out
    assert "Image file(s) base URL  : http://192.0.2.10:8080/images" in out
    assert IMAGE_NAME in out and "17.12.3a" in out
    assert "sqlite:///" in out


def test_database_password_from_environment_is_masked(lab):
    cfg = Config.load(None, env={"PNP_DB_PASSWORD": "s3cret", "DATABASE_URL": "mysql+pymysql://pnp@db/pnp"})
    assert "s3cret" in cfg.sqlalchemy_url and "s3cret" not in cfg.database_label


def test_md5_computed_once_and_cached_by_size_and_mtime(lab):
    cfg = Config.load(None, env={}, root=lab, resolve_images=False,
                      images=[{"pid": "C11*", "file": IMAGE_NAME, "version": "17.12.3a"}])
    first = resolve_catalogue(cfg)[0]
    assert len(first.md5) == 32 and first.size == (lab / "images" / IMAGE_NAME).stat().st_size
    cache_path = lab / "images" / ".md5-cache.json"
    cache = json.loads(cache_path.read_text())
    assert cache[IMAGE_NAME]["md5"] == first.md5
    # Same size and mtime: the cached value is trusted, the file is not read again.
    cache[IMAGE_NAME]["md5"] = "f" * 32
    cache_path.write_text(json.dumps(cache))
    assert resolve_catalogue(cfg)[0].md5 == "f" * 32
    # A changed mtime: computed again.
    os.utime(lab / "images" / IMAGE_NAME, (1, 1))
    assert resolve_catalogue(cfg)[0].md5 == first.md5


def test_md5_given_in_settings_wins(lab):
    cfg = Config.load(None, env={}, root=lab,
                      images=[{"pid": "C11*", "file": IMAGE_NAME, "version": "17.12.3a", "md5": "A" * 32}])
    assert cfg.images[0].md5 == "a" * 32
    assert not (lab / "images" / ".md5-cache.json").exists()
