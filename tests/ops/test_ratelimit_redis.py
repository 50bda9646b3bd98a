"""RATELIMIT_STORAGE_URI = "redis://127.0.0.1:6379": two real server processes with separate
databases count failed logins and token use together in the machine's Redis (so Redis is what
they share). A Redis that does not answer FAILS this test (it is never skipped); the keys live
under a prefix of their own and are deleted afterwards."""

from __future__ import annotations

import re
import uuid

import pytest
import redis
import requests

REDIS = "redis://127.0.0.1:6379"
PASSWORD = "redis-limit-pass-1"


@pytest.fixture
def redis_prefix():
    client = redis.Redis.from_url(REDIS, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis not reachable at {REDIS} ({exc}): run tests/setup-machine.sh")
    prefix = f"pnp-test-{uuid.uuid4().hex[:12]}"
    yield client, prefix
    keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def _server(start_server, tmp_path, name: str, prefix: str, **settings):
    db = tmp_path / f"{name}.sqlite3"
    return start_server(database_url=f"sqlite:///{db}", WORKERS=2, RATELIMIT_STORAGE_URI=REDIS,
                        RATELIMIT_KEY_PREFIX=prefix, ADMIN_USER="ops", ADMIN_PASSWORD=PASSWORD,
                        LOGIN_RATE_LIMIT="3 per day", LOGIN_ADDRESS_RATE_LIMIT="100 per day",
                        LOGIN_USER_RATE_LIMIT="100 per day", **settings)


def _login(server, password: str) -> int:
    http = requests.Session()
    page = http.get(server.url + "/login", timeout=30).text
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    answer = http.post(server.url + "/login", data={"csrf_token": csrf, "user": "ops", "password": password},
                       allow_redirects=False, timeout=30)
    return answer.status_code


def test_two_servers_share_failed_login_and_token_counters_in_redis(start_server, tmp_path, redis_prefix):
    client, prefix = redis_prefix
    token = f"redis-shared-token-{uuid.uuid4().hex}"
    a = _server(start_server, tmp_path, "a", prefix, ADMIN_TOKEN=token, API_RATE_LIMIT="4 per day")
    b = _server(start_server, tmp_path, "b", prefix, ADMIN_TOKEN=token, API_RATE_LIMIT="4 per day")

    assert _login(a, "wrong-1") == 401
    assert _login(b, "wrong-2") == 401
    assert _login(a, "wrong-3") == 401
    # three failures, counted on two servers with two databases: the pair (ops, 127.0.0.1) is
    # used up on both, the right password too must wait for the window
    assert _login(b, PASSWORD) == 429
    assert _login(a, PASSWORD) == 429
    keys = [k.decode() for k in client.scan_iter(match=f"*{prefix}:login-pair:ops|127.0.0.1*")]
    assert keys, "the failed-login counter is in Redis under the prefix"

    auth = {"Authorization": f"Bearer {token}"}
    statuses = [requests.get(server.url + "/api/v1/devices", headers=auth, timeout=30).status_code
                for server in (a, b, a, b, a, b)]
    assert statuses == [200, 200, 200, 200, 429, 429], "one API_RATE_LIMIT for the token on both servers"
    assert list(client.scan_iter(match=f"*{prefix}:api-token:*"))
