#!/usr/bin/env python3
"""Start the PnP/ZTP server under gunicorn: ``sudo python3 run.py``.

Reads settings.py (or ``--settings FILE``), applies ``PNP_*`` environment
variables and the flags below, refuses to start with a one-line reason when
the settings are incomplete, applies database migrations, prints a banner and
serves with gunicorn (workers × threads from the settings).

    python3 run.py --server-ip 192.0.2.10 --port 8080
    python3 run.py --check          # validate settings, print the banner, exit
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from app.config import Config, ConfigError, validate  # noqa: E402


def load_settings(path: str | None):
    """Import the operator's settings file as a module (default: ./settings.py)."""
    path = Path(path or os.environ.get("PNP_SETTINGS") or ROOT / "settings.py")
    if not path.is_file():
        raise ConfigError(f"settings file {path} not found")
    spec = importlib.util.spec_from_file_location("pnp_settings", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a typo in settings.py: say where, in one line
        raise ConfigError(f"{path}: {exc.__class__.__name__}: {exc}") from exc
    return module


def build_config(settings_path: str | None, **overrides) -> Config:
    """The Config for this run; ConfigError carries a one-line reason."""
    return Config.load(load_settings(settings_path), **overrides)


def banner(config: Config) -> str:
    """The start banner: where we listen, the URLs devices get, the database, the images."""
    images = "\n".join(
        f"  {e.pid:<16} {e.file} ({e.version}, md5 {e.md5 or '?'}, {e.size} bytes)"
        for e in config.images) or "  (none: devices keep their running image)"
    https = "" if config.port != 443 else " (port 443 without TLS)"
    return f"""Running PnP server (gunicorn). Stop with ctrl+c

Bind to IP-address      : {config.bind}
Listen on port          : {config.port}{https}
Server IP for devices   : {config.server_ip}
Option 43 (Cisco PnP)   : 5A1N;B2;K4;I{config.server_ip};J{config.port}
Image file(s) base URL  : {config.base_url}/images
Config file(s) base URL : {config.base_url}/configs
Other file(s) base URL  : {config.base_url}/files
Dashboard               : {config.base_url}/dashboard
Database                : {config.database_label}
Workers x threads       : {config.workers} x {config.threads}
Guestshell tarball      : {config.guestshell_tarball or '(not set: step skipped)'}
Python script           : {config.python_script or '(not set: step skipped)'}
Target images:
{images}
"""


def _check_bind(config: Config) -> str | None:
    family = socket.AF_INET6 if ":" in config.bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((config.bind, config.port))
        except PermissionError:
            return (f"cannot bind {config.bind}:{config.port}: ports below 1024 need root "
                    "(sudo python3 run.py) or CAP_NET_BIND_SERVICE; or use --port 8080")
        except OSError as exc:
            return f"cannot bind {config.bind}:{config.port}: {exc.strerror}"
    return None


def prepare_metrics_dir(config: Config) -> Path:
    """Set and empty PROMETHEUS_MULTIPROC_DIR before any worker starts.

    prometheus-client's multiprocess mode keeps each worker's metrics in files
    there; files left by a previous run would add old counts to the new ones.
    Default: ``<tmp>/pnp-prometheus-<port>`` (one per server instance).
    Must run before prometheus_client is imported.
    """
    import shutil
    import tempfile

    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR")
                or Path(tempfile.gettempdir()) / f"pnp-prometheus-{config.port}")
    if path.is_dir():
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def serve(config: Config) -> None:
    """Run gunicorn in this process with the application factory."""
    from gunicorn.app.base import BaseApplication

    prepare_metrics_dir(config)
    from app import create_app
    from app.metrics import worker_exit

    class PnpApplication(BaseApplication):
        def load_config(self):
            options = {
                "bind": f"[{config.bind}]:{config.port}" if ":" in config.bind
                else f"{config.bind}:{config.port}",
                "workers": config.workers, "threads": config.threads,
                "worker_class": "gthread", "timeout": 120, "graceful_timeout": 30,
                "keepalive": 5, "accesslog": str(config.logs_dir / "access.log"),
                "errorlog": "-", "loglevel": "warning", "proc_name": "pnp-server",
                "child_exit": lambda _server, worker: worker_exit(worker.pid),
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return create_app(config)

    PnpApplication().run()


def _fail(message: str) -> None:
    click.echo(f"pnp-server: cannot start: {message}", err=True)
    sys.exit(2)


@click.group(invoke_without_command=True)
@click.option("--settings", "settings_path", help="settings file (default ./settings.py)")
@click.option("--server-ip", help="address devices use to reach this server")
@click.option("--port", type=int, help="TCP port (default from settings, 80)")
@click.option("--bind", help="listen address (default 0.0.0.0)")
@click.option("--database", help="SQLAlchemy URL, e.g. mysql+pymysql://pnp@127.0.0.1/pnp")
@click.option("--workers", type=int, help="gunicorn worker processes")
@click.option("--threads", type=int, help="threads per worker")
@click.option("--check", is_flag=True, help="validate the settings, print the banner and exit")
@click.pass_context
def cli(ctx, settings_path, server_ip, port, bind, database, workers, threads, check):
    """Cisco PnP / Juniper ZTP provisioning server."""
    try:
        config = build_config(settings_path, server_ip=server_ip, port=port, bind=bind,
                              database_url=database, workers=workers, threads=threads)
    except ConfigError as exc:
        _fail(str(exc))
    ctx.obj = config
    if ctx.invoked_subcommand is not None:
        return
    problems = validate(config)
    if problems:
        for problem in problems[1:]:
            click.echo(f"pnp-server: also: {problem}", err=True)
        _fail(problems[0])
    if check:
        click.echo(banner(config))
        return
    problem = _check_bind(config)
    if problem:
        _fail(problem)
    from app.db import upgrade

    try:
        upgrade(config.sqlalchemy_url)
    except Exception as exc:  # unreachable database, bad credentials: one line
        _fail(f"database {config.database_label}: {str(exc).splitlines()[0]}")
    click.echo(banner(config))
    serve(config)


@cli.command("db-upgrade")
@click.pass_obj
def db_upgrade(config: Config):
    """Apply database migrations and exit."""
    from app.db import upgrade

    upgrade(config.sqlalchemy_url)
    click.echo(f"database {config.database_label} is up to date")


if __name__ == "__main__":
    cli()
