"""Every file download logged once, for the real server under gevent and gthread: the serial
(from the device's address), the body bytes actually sent and completed/aborted; and the
access log with the bytes actually sent (gunicorn's own count is 0 on its sendfile path) and
the duration."""

from __future__ import annotations

import re
import socket
import time

import pytest
import requests

from simulator import SimulatedDevice
from tests.helpers import IMAGE_NAME

SERIAL = "FGL0DL0001"


def _hello(server) -> None:
    """One work-request from 127.0.0.1, so the server knows which device is at that address."""
    xml = SimulatedDevice(server.url, SERIAL).work_request_xml("CiscoPnP-1.0-T1-1")
    assert requests.post(server.url + "/pnp/WORK-REQUEST", data=xml, timeout=30,
                         headers={"Content-Type": "text/xml"}).status_code == 200


def _wait_for(path, pattern: str, timeout: float = 20.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        match = re.search(pattern, text, re.MULTILINE)
        if match:
            return match
        time.sleep(0.2)
    raise AssertionError(f"no line matching {pattern!r} in {path}:\n{text[-3000:]}")


def _cut_download(server, path: str, keep: int) -> None:
    """Read ``keep`` bytes of ``path`` and hang up with a RST (the server's send fails part-way)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    got = 0
    while got < keep:
        chunk = sock.recv(65536)
        assert chunk
        got += len(chunk)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_downloads_logged_with_serial_bytes_and_completion(start_server, lab, worker_class):
    server = start_server(WORKERS=1, THREADS=4, WORKER_CLASS=worker_class, LOG_BACKOFF_SUMMARY=0)
    _hello(server)
    debug_log, access_log = lab / "logs" / "pnp_debug.log", lab / "logs" / "access.log"
    size = (lab / "images" / IMAGE_NAME).stat().st_size

    body = requests.get(f"{server.url}/images/{IMAGE_NAME}", timeout=30).content
    assert len(body) == size
    _wait_for(debug_log, rf"download GET images/{IMAGE_NAME} to 127\.0\.0\.1 \(SN {SERIAL}\): "
                         rf"completed, {size} bytes in \d+\.\d s$")
    _wait_for(access_log, rf'"GET /images/{IMAGE_NAME} HTTP/1\.1" 200 {size} .* \d+us pid=')

    big = 64 * 1024 * 1024  # far more than the loopback socket buffers hold
    with open(lab / "files" / "big.bin", "wb") as fh:
        fh.truncate(big)
    _cut_download(server, "/files/big.bin", 1024 * 1024)
    line = _wait_for(debug_log, rf"WARNING .*download GET files/big\.bin to 127\.0\.0\.1 \(SN {SERIAL}\): "
                                rf"aborted after (\d+) of {big} bytes")
    cut = int(line.group(1))
    assert 1024 * 1024 <= cut < big // 2
    logged = int(_wait_for(access_log, r'"GET /files/big\.bin HTTP/1\.1" 200 (\d+) ').group(1))
    assert logged == cut, "the access log and the download line count the same bytes"

    # a Range request and a HEAD: what was sent, not the file size
    ranged = requests.get(f"{server.url}/images/{IMAGE_NAME}", headers={"Range": "bytes=10-1033"}, timeout=30)
    assert ranged.status_code == 206 and len(ranged.content) == 1024
    _wait_for(debug_log, rf"download GET images/{IMAGE_NAME} range bytes=10-1033 .*: completed, 1024 bytes")
    _wait_for(access_log, rf'"GET /images/{IMAGE_NAME} HTTP/1\.1" 206 1024 ')
    assert requests.head(f"{server.url}/images/{IMAGE_NAME}", timeout=30).status_code == 200
    _wait_for(access_log, rf'"HEAD /images/{IMAGE_NAME} HTTP/1\.1" 200 0 ')
    lines = [ln for ln in debug_log.read_text().splitlines() if f"GET images/{IMAGE_NAME} to" in ln]
    assert len(lines) == 1, "one line per download"


def test_download_from_an_unknown_address_says_so(start_server, lab):
    server = start_server(WORKERS=1, LOG_BACKOFF_SUMMARY=0)
    assert requests.get(f"{server.url}/files/pxs.py", timeout=30).status_code == 200
    _wait_for(lab / "logs" / "pnp_debug.log",
              r"download GET files/pxs\.py to 127\.0\.0\.1 \(SN unknown\): completed, \d+ bytes")
