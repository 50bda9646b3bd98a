"""``python3 run.py …``: every command of the server in one click group.

``run.py`` with no command starts the server (``app/cli/server.py``); the
groups ``devices``, ``inventory``, ``images``, ``config``, ``db``
(app/cli/commands.py) act through the operator layer (app/ops) inside an
application context; ``dhcp`` (app/cli/dhcp.py) writes DHCP server configs; ``demo``
(app/cli/demo.py) runs the server with simulated devices on 127.0.0.1.
"""

from __future__ import annotations

import sys

import click

from app import create_app
from app.cli.commands import GROUPS
from app.cli.demo import demo
from app.cli.dhcp import dhcp
from app.cli.server import banner, build_config, check_bind, prepare_run_as, serve
from app.config import ConfigError, validate
from app.storage.charset import schema_problem
from app.storage.migrate import upgrade

OPERATOR_GROUPS = {group.name for group in GROUPS}


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
    if ctx.invoked_subcommand in OPERATOR_GROUPS:
        ctx.with_resource(create_app(config).app_context())
        return
    if ctx.invoked_subcommand is not None:
        return
    problems = validate(config)
    if problems:
        for problem in problems[1:]:
            click.echo(f"pnp-server: also: {problem}", err=True)
        _fail(problems[0])
    if check:
        click.echo(banner(config, check=True))
        return
    problem = check_bind(config)
    if problem:
        _fail(problem)
    try:
        upgrade(config.sqlalchemy_url)
        problem = schema_problem(config.sqlalchemy_url)
    except Exception as exc:  # unreachable database, bad credentials: one line
        _fail(f"database {config.database_label}: {str(exc).splitlines()[0]}")
    if problem:  # a table that cannot store the text the server writes (latin1)
        _fail(f"database {config.database_label}: {problem}")
    problem = prepare_run_as(config)
    if problem:
        _fail(problem)
    click.echo(banner(config))
    serve(config)


cli.add_command(dhcp)
cli.add_command(demo)
for _group in GROUPS:
    cli.add_command(_group)


def main() -> None:
    """Entry point of run.py."""
    cli()
