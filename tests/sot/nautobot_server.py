"""A real Nautobot for the tests: its own virtualenv, a migrated template database, a web server.

Nautobot (PyPI ``nautobot``) is installed into ``PNP_TEST_NAUTOBOT_VENV``
(default ``/var/cache/pnp-tests/nautobot-venv``), never into the project's
environment: it pins Django and friends. ``nautobot-server migrate`` costs
minutes, so it runs once per Nautobot version into a *template* database
(``pnp_nautobot_tpl_<version>``); each test session then gets a fresh database
copied from it with ``CREATE DATABASE ... TEMPLATE`` (a second). PostgreSQL
(``PNP_TEST_PG_HOST``/``PORT``, user ``postgres``, trust authentication) and Redis
(``PNP_TEST_REDIS_URL``) are the machine's.

``NautobotServer.start()`` runs ``nautobot-server runserver`` plus a Celery
worker (Nautobot sends webhooks from Celery) on free loopback ports, creates a
superuser and an API token.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

VENV = Path(os.environ.get("PNP_TEST_NAUTOBOT_VENV", "/var/cache/pnp-tests/nautobot-venv"))
NAUTOBOT_SPEC = os.environ.get("PNP_TEST_NAUTOBOT_SPEC", "nautobot>=2.3,<4")
PG_HOST = os.environ.get("PNP_TEST_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("PNP_TEST_PG_PORT", "5432")
REDIS_HOST = os.environ.get("PNP_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = os.environ.get("PNP_TEST_REDIS_PORT", "6379")
READY = VENV / ".pnp-ready"

CONFIG = '''\
import os
from nautobot.core.settings import *  # noqa: F401,F403
from nautobot.core.settings_funcs import is_truthy  # noqa: F401

ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
SECRET_KEY = os.environ["NAUTOBOT_SECRET_KEY"]
DATABASES = {"default": {
    "NAME": os.environ["NAUTOBOT_DB_NAME"], "USER": "postgres", "PASSWORD": "",
    "HOST": os.environ["NAUTOBOT_DB_HOST"], "PORT": os.environ["NAUTOBOT_DB_PORT"],
    "ENGINE": "django.db.backends.postgresql", "CONN_MAX_AGE": 0}}
_REDIS = "redis://" + os.environ["NAUTOBOT_REDIS_HOST"] + ":" + os.environ["NAUTOBOT_REDIS_PORT"] + "/"
_DB = int(os.environ.get("PNP_TEST_REDIS_DB", "13"))
CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": _REDIS + str(_DB),
                      "TIMEOUT": 300, "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"}}}
CELERY_BROKER_URL = _REDIS + str(_DB + 1)
CELERY_RESULT_BACKEND = "nautobot.core.celery.backends.NautobotDatabaseBackend"
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("PNP_TEST_CELERY_QUEUE", "default")
INSTALLATION_METRICS_ENABLED = False
EXTRA_INSTALLED_APPS = ["pnp_test_loopback"]
MEDIA_ROOT = os.environ["NAUTOBOT_ROOT"] + "/media"
STATIC_ROOT = os.environ["NAUTOBOT_ROOT"] + "/static"
'''

# Nautobot 3.2 refuses webhook targets on loopback unconditionally (its SSRF guard,
# nautobot/extras/webhooks.py). Everything in these tests must stay on loopback, so the
# test instance loads this tiny Django app, which lets 127.0.0.1 (and only it) through;
# everything else about webhooks (Celery, HMAC signing, the POST) is Nautobot's own.
LOOPBACK_APP = '''\
from django.apps import AppConfig


class LoopbackWebhooks(AppConfig):
    name = "pnp_test_loopback"

    def ready(self):
        from nautobot.extras import webhooks

        blocked = webhooks._webhook_addr_is_builtin_blocked
        webhooks._webhook_addr_is_builtin_blocked = lambda addr: str(addr) != "127.0.0.1" and blocked(addr)
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _psql(sql: str, database: str = "postgres") -> str:
    out = subprocess.run(["psql", "-h", PG_HOST, "-p", PG_PORT, "-U", "postgres", "-d", database,
                          "-v", "ON_ERROR_STOP=1", "-tAc", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def ensure_venv(log=print) -> Path:
    """The Nautobot virtualenv, created and filled with ``pip install nautobot`` when absent.

    A lock file serialises concurrent test runs; ``.pnp-ready`` marks a finished install.
    """
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / ".nautobot-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not READY.exists():
            log(f"installing {NAUTOBOT_SPEC} into {VENV} (about a minute)")
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", NAUTOBOT_SPEC],
                           check=True)
            READY.write_text("ok\n")
    return VENV


def version() -> str:
    out = subprocess.run([str(VENV / "bin" / "python"), "-c", "import nautobot; print(nautobot.__version__)"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def ensure_template(server: NautobotServer | None = None, log=print) -> str:
    """The name of the migrated template database of this Nautobot version, migrated now when absent.

    A database comment ``migrated`` marks a finished migration (an interrupted one is redone).
    """
    import tempfile

    template = "pnp_nautobot_tpl_" + version().replace(".", "_").replace("-", "_")
    with open(VENV.parent / ".nautobot-template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        exists = _psql(f"SELECT 1 FROM pg_database WHERE datname = '{template}'")
        ready = exists and _psql(f"SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                                 f"WHERE datname = '{template}'") == "migrated"
        if not ready:
            if exists:
                _psql(f"DROP DATABASE {template}")
            log(f"migrating a Nautobot template database {template} (several minutes, once)")
            _psql(f"CREATE DATABASE {template}")
            with tempfile.TemporaryDirectory() as tmp:
                (server or NautobotServer(Path(tmp))).manage("migrate", "--no-input", database=template,
                                                             timeout=3600)
            _psql(f"COMMENT ON DATABASE {template} IS 'migrated'")
    return template


class NautobotServer:
    """A Nautobot web server and Celery worker on loopback; ``url``, ``token``; ``stop()``."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.root = workdir / "nautobot"
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path = self.root / "nautobot_config.py"
        self.config_path.write_text(CONFIG)
        (self.root / "pnp_test_loopback").mkdir(exist_ok=True)
        (self.root / "pnp_test_loopback" / "__init__.py").write_text("")
        (self.root / "pnp_test_loopback" / "apps.py").write_text(LOOPBACK_APP)
        self.database = f"pnp_nautobot_{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = ""
        self.procs: list[subprocess.Popen] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("NAUTOBOT_", "PNP_", "DJANGO"))}
        self.env.update(NAUTOBOT_CONFIG=str(self.config_path), NAUTOBOT_ROOT=str(self.root),
                        NAUTOBOT_SECRET_KEY=secrets.token_hex(32), NAUTOBOT_DB_HOST=PG_HOST,
                        NAUTOBOT_DB_PORT=PG_PORT, NAUTOBOT_DB_NAME=self.database,
                        NAUTOBOT_REDIS_HOST=REDIS_HOST, NAUTOBOT_REDIS_PORT=REDIS_PORT,
                        PNP_TEST_CELERY_QUEUE=f"pnp-{uuid.uuid4().hex[:8]}", PYTHONUNBUFFERED="1",
                        PYTHONPATH=str(self.root))

    def manage(self, *args: str, database: str | None = None, timeout: float = 1200,
               input_text: str | None = None) -> str:
        """Run ``nautobot-server <args>``; raises with its output on failure."""
        env = dict(self.env, NAUTOBOT_DB_NAME=database or self.database)
        proc = subprocess.run([str(VENV / "bin" / "python"), "-m", "nautobot.core.cli", *args], env=env,
                              capture_output=True, text=True, timeout=timeout, input=input_text)
        if proc.returncode != 0:
            raise RuntimeError(f"nautobot-server {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n"
                               f"{proc.stderr[-3000:]}")
        return proc.stdout

    def prepare_database(self, log=print) -> None:
        """A fresh database copied from the migrated template (migrating the template once)."""
        template = ensure_template(self, log)
        _psql(f"CREATE DATABASE {self.database} TEMPLATE {template}")

    def start(self, log=print) -> NautobotServer:
        """Prepare the database, start runserver and a Celery worker, create a superuser and token."""
        self.prepare_database(log)
        user, password = "admin", secrets.token_hex(12)
        env_user = dict(self.env, DJANGO_SUPERUSER_PASSWORD=password)
        proc = subprocess.run([str(VENV / "bin" / "python"), "-m", "nautobot.core.cli", "createsuperuser",
                               "--noinput", "--username", user, "--email", "admin@example.invalid"],
                              env=env_user, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"createsuperuser failed: {proc.stdout}{proc.stderr}")
        self.token = secrets.token_hex(20)
        self.manage("nbshell", input_text=(
            "from nautobot.users.models import Token, User\n"
            f"Token.objects.create(user=User.objects.get(username={user!r}), key={self.token!r})\n"))
        self._spawn("web", "runserver", "--noreload", "--insecure", f"127.0.0.1:{self.port}")
        self._spawn("celery", "celery", "worker", "--concurrency", "1", "--pool", "solo",
                    "-Q", self.env["PNP_TEST_CELERY_QUEUE"], "--loglevel", "INFO")
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"nautobot process exited {p.returncode}: {self.output()}")
            try:
                r = requests.get(self.url + "/api/status/", headers=self.headers, timeout=5)
                if r.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(1)
        raise RuntimeError(f"Nautobot did not answer /api/status/: {self.output()}")

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Token {self.token}", "Accept": "application/json"}

    def _spawn(self, name: str, *args: str) -> None:
        log = (self.root / f"{name}.log").open("w")
        self.procs.append(subprocess.Popen([str(VENV / "bin" / "python"), "-m", "nautobot.core.cli", *args],
                                           env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True, cwd=self.root))

    def output(self) -> str:
        return "\n".join(f"--- {p.name}:\n" + p.read_text(errors="replace")[-4000:]
                         for p in sorted(self.root.glob("*.log")))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        try:
            _psql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
        except subprocess.CalledProcessError:
            pass


if __name__ == "__main__":  # prepare the cache (tests/setup-machine.sh): python3 tests/sot/nautobot_server.py
    ensure_venv()
    print(f"Nautobot {version()}: template database {ensure_template()} ready")
