"""Slow and idle clients cannot starve devices, on the server that ``python3 run.py`` starts.

200 connections sending a request header one byte every 0.5 s and 100
connections reading an image at 2 KiB/s are kept connected (bench/slow_clients.py);
meanwhile HELLO and a work-request from a device must still be answered. With
gthread each of those connections held one of the 2 x 4 threads and the
probes timed out. Latency figures are measured in bench/slow_clients.py
(RELIABILITY.md), not here: this test only checks the answers arrive.
"""

from __future__ import annotations

import time

from bench.slow_clients import SlowClients, probe


def test_hello_and_work_request_answered_while_slow_clients_hold_connections(start_server, lab):
    with open(lab / "images" / "big.bin", "wb") as fh:
        fh.truncate(256 * 1024 * 1024)  # sparse: the slow readers never reach its end
    server = start_server()
    clients = SlowClients(server.port, headers=200, readers=100, image="big.bin")
    clients.start()
    try:
        time.sleep(2)
        answered = 0
        for i in range(6):
            probe(server.url, f"FGL0SLOW{i:03d}", f"C-{i}", timeout=10)  # raises on a timeout or non-200
            answered += 1
            time.sleep(0.5)
        assert answered == 6
        assert clients.alive() >= 250, "the slow clients must still be connected while the probes ran"
    finally:
        clients.stop()
