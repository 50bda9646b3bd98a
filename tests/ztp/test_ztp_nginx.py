"""deploy/nginx.conf in front of the real server: X-Accel-Redirect for Juniper ZTP configs and images.

A real nginx (Debian package ``nginx``) runs the shipped example with only its
paths and ports rewritten to the test's lab folder and loopback ports.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import time

import pytest
import requests

from tests.helpers import ROOT, free_port

IMAGE = "jinstall-ex-4300-21.4R3.15-signed.tgz"
STATIC = "system {\n    host-name sw-nginx;\n    root-authentication { encrypted-password \"$6$x\"; }\n}\n"


def _nginx() -> str:
    path = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if path is None:
        pytest.fail("nginx not found: apt-get install -y nginx")
    return path


@pytest.fixture
def nginx_front(lab, start_server, tmp_path):
    folder = lab / "configs" / "juniper"
    folder.mkdir()
    (folder / "02-00-00-00-00-01.conf").write_text(STATIC)
    (folder / "tmpl.conf.j2").write_text("system { host-name {{ hostname }}; }\n")
    (folder / "inventory.csv").write_text("mac,hostname,template\n02-00-00-00-00-02,sw-tmpl,tmpl.conf.j2\n")
    (lab / "images" / IMAGE).write_bytes(os.urandom(1024 * 1024))
    server = start_server(X_ACCEL_REDIRECT_PREFIX="/protected", JUNIPER_MODELS={"ex4300-48p": IMAGE})
    backend_port = int(server.url.rsplit(":", 1)[1])
    port = free_port()
    work = tmp_path / "nginx"
    work.mkdir()
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    for old, new in (("/opt/pnp-server", str(lab)), ("/var/log/nginx", str(work)),
                     ("127.0.0.1:8080", f"127.0.0.1:{backend_port}"), ("listen 80;", f"listen 127.0.0.1:{port};")):
        assert old in conf, old
        conf = conf.replace(old, new)
    conf_file = work / "nginx.conf"
    conf_file.write_text(conf)
    globals_ = f"daemon off; pid {work}/nginx.pid; error_log {work}/main-error.log;"
    if os.geteuid() == 0:
        globals_ += " user root;"  # the lab folder is private to this user
    cmd = [_nginx(), "-p", str(work), "-c", str(conf_file), "-g", globals_]
    check = subprocess.run([*cmd[:-2], "-g", globals_.replace("daemon off; ", ""), "-t"],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(url + "/pnp/HELLO", timeout=2)
                break
            except requests.RequestException:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("nginx did not start: " + (work / "main-error.log").read_text(errors="replace"))
                time.sleep(0.1)
        yield url, lab
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.mark.e2e
def test_x_accel_through_nginx(nginx_front):
    url, lab = nginx_front
    resp = requests.get(f"{url}/ztp_fetch/image/Juniper-ex4300-48p-PE37/02-00-00-00-00-01.img", timeout=60)
    assert resp.status_code == 200
    assert resp.content == (lab / "images" / IMAGE).read_bytes()
    assert resp.headers["Content-Disposition"] == f"attachment; filename={IMAGE}"
    assert "X-Accel-Redirect" not in resp.headers  # consumed by nginx

    conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=30)
    conn.request("GET", "//ztp_fetch/conf/Juniper-ex4300-48p/02:00:00:00:00:01.conf")
    raw = conn.getresponse()
    assert raw.status == 200 and raw.read().decode() == STATIC
    assert raw.getheader("Content-Disposition") == "attachment; filename=02-00-00-00-00-01.conf"
    conn.close()

    resp = requests.get(f"{url}/ztp_fetch/conf/Juniper-ex4300-48p/02-00-00-00-00-02.conf", timeout=30)
    assert resp.status_code == 200 and resp.text == "system { host-name sw-tmpl; }\n"  # rendered: direct body

    resp = requests.get(f"{url}/ztp_fetch/conf/Juniper-ex4300-48p/02-00-00-00-00-09.conf", timeout=30)
    assert resp.status_code == 404 and "no config for MAC 02-00-00-00-00-09" in resp.text

    # the internal locations cannot be fetched directly
    assert requests.get(f"{url}/protected/images/{IMAGE}", timeout=30).status_code == 404
    assert requests.get(f"{url}/protected/configs/juniper/02-00-00-00-00-01.conf", timeout=30).status_code == 404

