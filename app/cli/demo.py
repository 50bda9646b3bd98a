"""``python3 run.py demo``: the main job on this machine, with nothing to prepare or edit.

Builds a demo project folder (``demo/`` in the project: images/, files/,
configs/, logs/ and its own embedded SQLite database), so nothing of the real
catalogue or database is touched, with:

* a generated sample image named like a real IOS-XE image
  (``c1100-universalk9.17.12.03a.SPA.bin``, random bytes), recorded in
  ``demo/images/catalogue.json`` with its md5 exactly as ``images add`` does;
* a sample guestshell tarball (a small tar archive) and the shipped
  ``files/pxs.py`` script, and the shipped ``configs/default.cfg``;

then starts the real server (gunicorn) on 127.0.0.1 and a high port with an
admin login printed in the banner, and runs ``python3 -m simulator`` against
it: a handful of simulated ISR1k devices go through all 13 steps while the
dashboard shows them. The server keeps serving after the devices finished;
ctrl+c stops both. Every run starts the demo devices over.
"""

from __future__ import annotations

import io
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import click

from app.config import PROJECT_ROOT, Config, validate

DEMO_IMAGE = "c1100-universalk9.17.12.03a.SPA.bin"
DEMO_IMAGE_VERSION = "17.12.3a"
DEMO_IMAGE_SIZE = 24 * 1024 * 1024
DEMO_TARBALL = "guestshell.17.09.01a.tar"
DEMO_PID = "C1111-8P"
DEMO_SERIAL_PREFIX = "DEMO"
PREFERRED_PORT = 8080


def demo_root(project: Path = PROJECT_ROOT) -> Path:
    """The demo's own project folder (``demo/``, ignored by git)."""
    return project / "demo"


def free_high_port(bind: str = "127.0.0.1", preferred: int = PREFERRED_PORT) -> int:
    """``preferred`` when it can be bound on ``bind``, else a free port the kernel picks (> 1024)."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind((bind, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise click.ClickException(f"no free TCP port on {bind}")


def _sample_tarball() -> bytes:
    """A small, valid tar archive standing in for Cisco's guestshell package."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        note = b"Sample guestshell package for run.py demo: not a real Cisco guestshell.\n"
        info = tarfile.TarInfo("guestshell/README")
        info.size, info.mtime = len(note), 0
        tar.addfile(info, io.BytesIO(note))
    return buffer.getvalue()


def prepare(root: Path, project: Path = PROJECT_ROOT) -> None:
    """Create (or refresh) the demo folder; files that exist are kept, so a second run is quick.

    The shipped ``configs/default.cfg`` and ``files/pxs.py`` are copied every
    time (the demo follows edits of them); the image and the tarball are
    generated once.
    """
    for name in ("images", "files", "configs", "logs"):
        (root / name).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(project / "configs" / "default.cfg", root / "configs" / "default.cfg")
    shutil.copyfile(project / "files" / "pxs.py", root / "files" / "pxs.py")
    tarball = root / "files" / DEMO_TARBALL
    if not tarball.is_file():
        tarball.write_bytes(_sample_tarball())
    image = root / "images" / DEMO_IMAGE
    if not image.is_file() or image.stat().st_size != DEMO_IMAGE_SIZE:
        part = image.with_name(f".{image.name}.part")
        part.write_bytes(random.Random(DEMO_IMAGE).randbytes(DEMO_IMAGE_SIZE))
        os.replace(part, image)


def admin_password(root: Path) -> str:
    """PNP_ADMIN_PASSWORD when set, else the demo's generated one (kept in demo/.admin-password)."""
    if os.environ.get("PNP_ADMIN_PASSWORD"):
        return os.environ["PNP_ADMIN_PASSWORD"]
    path = root / ".admin-password"
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    password = secrets.token_urlsafe(12)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def demo_config(root: Path, port: int, password: str) -> Config:
    """The demo's Config: loopback, short backoffs, the demo folder as project root."""
    return Config.load(None, env={}, root=root, server_ip="127.0.0.1", bind="127.0.0.1", port=port,
                       database_url=f"sqlite:///{root / 'pnp.sqlite3'}", workers=2, threads=8,
                       guestshell_tarball=DEMO_TARBALL, python_script="pxs.py",
                       script_success_marker="PNP-SCRIPT-OK", retry_backoff=[5], reload_wait=10,
                       guestshell_check_backoff=5, idle_backoff=10, admin_password=password)


def forget_demo_devices(config: Config, devices: int) -> None:
    """Delete the demo devices of an earlier run, so this run provisions them again."""
    from app import create_app
    from app import ops as op
    from app.storage.db import get_sessions

    application = create_app(config)
    try:
        with application.app_context():
            for i in range(devices):
                try:
                    op.delete_device(get_sessions(), f"{DEMO_SERIAL_PREFIX}{i:05d}", "demo")
                except op.NotFound:
                    pass
    finally:
        application.extensions["pnp_engine"].dispose()


def start_simulator(url: str, devices: int, time_scale: float) -> subprocess.Popen:
    """``python3 -m simulator`` against ``url`` as a child that dies with this process."""
    epilogue = (f"demo: the server keeps serving; dashboard {url}/dashboard; ctrl+c stops it "
                "(run.py demo again starts the devices over)")
    args = [sys.executable, "-m", "simulator", "--url", url, "-n", str(devices), "--pid", DEMO_PID,
            "--serial-prefix", DEMO_SERIAL_PREFIX, "--time-scale", str(time_scale), "--wait", "120",
            "--reload-seconds", "8",
            "--epilogue", epilogue]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    """In the simulator child: Linux sends it SIGTERM when run.py dies (PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


@click.command("demo")
@click.option("-n", "--devices", default=5, show_default=True, help="simulated ISR1k devices")
@click.option("--port", default=0, help="listen port on 127.0.0.1 [default: 8080 if free, else any free port]")
@click.option("--time-scale", default=1.0, show_default=True,
              help="the simulated devices wait this fraction of the server's backoffs")
@click.option("--folder", type=click.Path(file_okay=False), default=None,
              help="the demo's project folder [default: demo/ in the project]")
def demo(devices, port, time_scale, folder):
    """Start the server on 127.0.0.1 with a sample image and provision simulated ISR1k devices."""
    from app.cli.commands import record_image
    from app.cli.server import banner, check_bind, serve
    from app.storage.migrate import upgrade

    root = Path(folder).resolve() if folder else demo_root()
    click.echo(f"demo: preparing {root} (sample image, guestshell tarball, script, day-0 config)")
    prepare(root)
    port = port or free_high_port()
    config = demo_config(root, port, admin_password(root))
    record_image(config, config.images_dir / DEMO_IMAGE, "C11*", DEMO_IMAGE_VERSION)
    config = demo_config(root, port, config.admin_password)  # now with the catalogue entry
    problems = validate(config) or ([check_bind(config)] if check_bind(config) else [])
    if problems:
        raise click.ClickException(f"demo cannot start: {problems[0]}")
    upgrade(config.sqlalchemy_url)
    forget_demo_devices(config, devices)
    text = banner(config).replace(f"login {config.admin_user}",
                                  f"login {config.admin_user} / {config.admin_password}")
    click.echo(text)
    click.echo(f"demo: {devices} simulated {DEMO_PID} devices start now; watch them at "
               f"{config.base_url}/dashboard (user {config.admin_user}, password {config.admin_password})")
    start_simulator(config.base_url, devices, time_scale)
    serve(config)
