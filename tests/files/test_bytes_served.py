"""``pnp_file_bytes_served_total`` counts the bytes that actually left, on the real server.

A full download, a Range request and a download cut after 1 MiB: the counter
holds what was sent (within the socket buffers of the cut one), not the
Content-Length of each response as it started.
"""

from __future__ import annotations

import re
import socket
import time

import requests

from tests.helpers import IMAGE_NAME


def _counter(server, area: str) -> float:
    text = requests.get(server.url + "/metrics", timeout=30).text
    total = 0.0
    for line in text.splitlines():
        m = re.match(r'pnp_file_bytes_served_total\{(.*)\} (\S+)$', line)
        if m and f'area="{area}"' in m.group(1):
            total += float(m.group(2))
    return total


def test_bytes_counted_as_sent_not_as_announced(start_server, lab):
    server = start_server(WORKERS=1, THREADS=4)
    size = (lab / "images" / IMAGE_NAME).stat().st_size
    url = f"{server.url}/images/{IMAGE_NAME}"
    assert len(requests.get(url, timeout=30).content) == size
    ranged = requests.get(url, headers={"Range": "bytes=100-1123"}, timeout=30)
    assert ranged.status_code == 206 and len(ranged.content) == 1024
    assert requests.head(url, timeout=30).status_code == 200

    # A client that reads 1 MiB of a 64 MiB file and hangs up (the socket buffers on loopback
    # hold a few MiB: the file must be much larger than them).
    big = 64 * 1024 * 1024
    with open(lab / "files" / "big.bin", "wb") as fh:
        fh.truncate(big)
    before = _counter(server, "files")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /files/big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = 0
    while got < 1024 * 1024:
        chunk = sock.recv(65536)
        assert chunk
        got += len(chunk)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # RST: the server's send fails part-way

    assert _counter(server, "images") == size + 1024  # full GET + Range; HEAD sends no body
    deadline = time.monotonic() + 20
    while (cut := _counter(server, "files") - before) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert 1024 * 1024 <= cut < big // 2, f"cut download counted {cut} bytes of {big}"
