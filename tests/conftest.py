"""Shared pytest fixtures: a lab folder, app/client/runner, MariaDB, a real gunicorn server.

* ``lab``: a temporary project root with images/ (a small fake IOS-XE image),
  configs/default.cfg, files/ (guestshell tarball + pxs.py) and a settings file.
* ``app``, ``client``, ``runner``: the Flask tutorial fixtures on a SQLite file.
* ``mariadb_url``: a fresh MariaDB database for this test session (a MariaDB
  that cannot be reached FAILS the tests; ``-m 'not mariadb'`` leaves them out).
* ``galera``: a three-node MariaDB Galera cluster for the session (marker ``galera``).
* ``start_server``: starts ``run.py`` (gunicorn) as a real process on a free
  loopback port (tests/helpers.py ``ServerProcess``); stopped at teardown.

Helpers that are not fixtures live in tests/helpers.py.

No test passes by skipping: a missing real part (MariaDB, chromium, kea-dhcp4,
dhcpd, nginx, network namespaces, root) fails the run, with or without ``CI``
(``pytest_runtest_makereport`` turns any skip into a failure). Leave a part out
on purpose by marker: ``-m 'not mariadb'``, ``-m 'not browser and not netns'``…
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

# Processes the tests start (run.py) use the interpreter running the tests, not the
# project's .venv (run.py re-executes itself there otherwise; see run.py use_project_venv).
os.environ.setdefault("PNP_NO_VENV", "1")

from tests.helpers import (  # noqa: E402
    FAST_SETTINGS,
    MARIADB_ADMIN_URL,
    GaleraCluster,
    ServerProcess,
    free_port,
    make_lab,
)


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A project root with a 3 MB fake image, configs/default.cfg, tarball and script."""
    return make_lab(tmp_path)


@pytest.fixture
def make_config(lab: Path):
    """Build a Config rooted in ``lab`` with the fast test settings plus overrides."""
    from app.config import Config

    def make(**overrides):
        values = {k.lower(): v for k, v in FAST_SETTINGS.items()}
        values.update(root=lab, database_url=f"sqlite:///{lab / 'pnp.sqlite3'}")
        values.update(overrides)
        return Config.load(None, env={}, **values)
    return make


@pytest.fixture
def make_app(make_config):
    """Factory: the Flask app for ``make_config(**overrides)`` on a migrated database;
    its webhook dispatcher is stopped and its engine disposed at teardown."""
    from app import create_app

    apps = []

    def make(**overrides):
        application = create_app(make_config(**overrides), migrate=True)
        application.config["TESTING"] = True
        apps.append(application)
        return application
    yield make
    for application in apps:
        dispatcher = application.extensions.get("pnp_dispatcher")
        if dispatcher is not None:  # its thread would go on polling a database the next test drops
            dispatcher.stop.set()
            dispatcher.thread.join(10)
        application.extensions["pnp_engine"].dispose()


@pytest.fixture
def app(make_app):
    """The Flask app on a migrated SQLite file in the lab folder."""
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    """Flask's CLI runner whose ``invoke(args=[...])`` runs the operator commands of run.py."""
    import click

    from app.cli.commands import GROUPS

    group = click.Group("pnp", commands={g.name: g for g in GROUPS})
    cli_runner = app.test_cli_runner()
    invoke = cli_runner.invoke
    cli_runner.invoke = lambda cli=None, args=None, **kw: invoke(cli or group, args, **kw)
    return cli_runner


@pytest.fixture(scope="session")
def mariadb_url():
    """A fresh MariaDB database for the session; dropped afterwards.

    An unreachable MariaDB fails every test that needs it (run
    ``tests/setup-machine.sh``, or leave them out with ``-m 'not mariadb'``).
    """
    from sqlalchemy import create_engine, text

    name = f"pnp_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(MARIADB_ADMIN_URL)
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    except Exception as exc:  # noqa: BLE001 - any connection failure
        pytest.fail(f"MariaDB not reachable at {MARIADB_ADMIN_URL} ({exc.__class__.__name__}: {exc}); "
                    "run tests/setup-machine.sh, or leave these tests out with -m 'not mariadb'")
    yield f"{MARIADB_ADMIN_URL}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


@pytest.fixture
def own_mariadb_url():
    """A MariaDB database of the test's own (utf8mb4, migrated), for tests that change its schema
    or server settings (triggers, connection kills); dropped afterwards."""
    from app.storage.migrate import upgrade
    from tests.helpers import drop_database, scratch_database

    url = scratch_database("utf8mb4")
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def mariadb_fresh(mariadb_url):
    """The session MariaDB database, emptied of devices (schema kept)."""
    from sqlalchemy import create_engine, text

    from app.storage.migrate import upgrade

    upgrade(mariadb_url)
    engine = create_engine(mariadb_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM device_event"))
        conn.execute(text("DELETE FROM device_state"))
    engine.dispose()
    return mariadb_url


@pytest.fixture
def start_server(lab: Path):
    """Factory: start run.py under gunicorn on 127.0.0.1:<free port>; returns a ServerProcess
    (tests/helpers.py), stopped at teardown."""
    servers: list[ServerProcess] = []

    def start(database_url: str | None = None, timeout: float = 30.0, metrics_in_lab: bool = True,
              **settings) -> ServerProcess:
        server = ServerProcess(lab, free_port(), database_url or f"sqlite:///{lab / 'pnp.sqlite3'}", **settings)
        server.metrics_in_lab = metrics_in_lab
        servers.append(server)
        server.start(timeout=timeout)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def galera():
    """A three-node MariaDB Galera cluster on 127.0.0.1 (tests/helpers.py GaleraCluster) for the
    session, Synced, with a ``haproxy_check`` user for HAProxy's mysql-check; removed afterwards.
    Tests that kill a node rejoin it before they end."""
    cluster = GaleraCluster()
    try:
        cluster.start()
        cluster.nodes[0].execute("CREATE USER IF NOT EXISTS 'haproxy_check'@'127.0.0.1'")
        yield cluster
    finally:
        cluster.close()


def pytest_collection_modifyitems(config, items):
    """Every test that uses the MariaDB fixtures carries the ``mariadb`` marker (``-m 'not mariadb'``
    then leaves them out); a test that starts the real server carries ``e2e``."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & {"mariadb_url", "mariadb_fresh", "own_mariadb_url"}:
            item.add_marker("mariadb")
        if "start_server" in names:
            item.add_marker("e2e")
        if "galera" in names:
            item.add_marker("galera")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped test is a failed test: a missing real part must not make the run pass.

    Tests left out on purpose are deselected by marker (``-m 'not browser'``), which
    is not a skip. ``xfail`` stays what it is.
    """
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = (f"skipped, which counts as a failure here: {reason}\n"
                           "(install the missing part with tests/setup-machine.sh, or deselect by marker: "
                           "-m 'not mariadb', 'not browser', 'not root', 'not netns', 'not e2e')")
