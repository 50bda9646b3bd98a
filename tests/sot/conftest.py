"""Fixtures of the source-of-truth tests: a real Nautobot for the session (tests/sot/nautobot_server.py)."""

from __future__ import annotations

import pytest

from tests.sot.nautobot_server import NautobotServer, ensure_venv


@pytest.fixture(scope="session")
def nautobot(tmp_path_factory):
    """A real Nautobot on loopback (its own virtualenv, PostgreSQL, Redis, a Celery worker for webhooks).

    Never skipped: a machine without PostgreSQL/Redis fails these tests.
    The first run on a machine installs Nautobot and migrates a template database
    (several minutes); later runs copy the template (seconds).
    """
    ensure_venv()
    server = NautobotServer(tmp_path_factory.mktemp("nautobot"))
    try:
        server.start()
    except Exception:
        server.stop()
        raise
    yield server
    server.stop()
