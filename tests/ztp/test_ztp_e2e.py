"""End-to-end: a simulated Juniper ZTP client fetches image and config from the real server (gunicorn).

The client does what factory-default Junos does after DHCP (docs/protocol.md §16.1, §1.4):
GET the image named in sub-option 0, then the config named in sub-option 1, prefixed with
``/`` (``//ztp_fetch/...`` when the name already starts with ``/``), and repeats both after a
ZTP restart. The device then appears in device_state beside a Cisco PnP device.
"""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import create_engine, text

from simulator import SimulatedDevice

IMAGE = "jinstall-ex-4300-21.4R3.15-signed.tgz"
MAC = "0a:1b:2c:3d:4e:5f"
VCI = "Juniper-ex4300-48p-PE3714AB0001"
CONFIG = "system {\n    host-name {{ hostname }};\n    root-authentication { encrypted-password \"$6$x\"; }\n}\n"


@pytest.fixture
def juniper_lab(lab):
    folder = lab / "configs" / "juniper"
    folder.mkdir()
    (folder / "ex4300.conf.j2").write_text(CONFIG)
    (folder / "inventory.csv").write_text(f"mac,hostname,template\n{MAC.upper()},sw-e2e-01,ex4300.conf.j2\n")
    (lab / "images" / IMAGE).write_bytes(b"\x1f\x8b" + b"J" * (2 * 1024 * 1024))
    return lab


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` verbatim (http.client sends it as is, ``//`` included)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def juniper_ztp_client(url: str) -> None:
    """One ZTP pass, twice (a ZTP restart repeats identical GETs)."""
    for _ in range(2):
        image = requests.get(f"{url}/ztp_fetch/image/{VCI}/{MAC.replace(':', '-')}.img", timeout=60)
        assert image.status_code == 200, image.text
        assert image.headers["Content-Disposition"] == f"attachment; filename={IMAGE}"
        assert len(image.content) == 2 * 1024 * 1024 + 2
        status, body = raw_get(url, f"//ztp_fetch/conf/{VCI}/{MAC.replace(':', '-')}.conf")
        assert status == 200, body
        assert b"host-name sw-e2e-01;" in body


def _check_rows(db_url: str) -> None:
    engine = create_engine(db_url)
    # the end of a download is recorded when gunicorn closes the response, which may come a moment
    # after the client has its last byte (and has sent its next request)
    deadline = time.monotonic() + 15
    while True:
        with engine.connect() as conn:
            rows = {r["serial_number"]: r for r in conn.execute(text(
                "SELECT serial_number, vendor, mac_address, pid, udi, state, hostname, target_image "
                "FROM device_state")).mappings()}
            events = conn.execute(text(
                "SELECT e.kind, e.service, e.success FROM device_event e JOIN device_state d ON d.id = e.device_id "
                "WHERE d.serial_number = :mac ORDER BY e.id"), {"mac": MAC}).all()
        if len(events) >= 8 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    engine.dispose()
    juniper = rows[MAC]
    assert (juniper["vendor"], juniper["mac_address"], juniper["pid"]) == ("juniper", MAC, "ex4300-48p")
    assert juniper["udi"] == "PID:ex4300-48p,VID:,SN:PE3714AB0001"
    assert (juniper["state"], juniper["hostname"], juniper["target_image"]) == (
        "ZTP_DONE", "sw-e2e-01", IMAGE)  # config and image fetched completely
    # each download: its start, then its end (complete), twice each
    for service in ("ztp-image", "ztp-conf"):
        mine = [(kind, bool(success) if success is not None else None) for kind, svc, success in events
                if svc == service]
        assert mine == [("fetch", None), ("fetch", True)] * 2, (service, events)
    assert rows["FGL2548L900"]["vendor"] == "cisco"


def _cisco_device(url: str) -> None:
    device = SimulatedDevice(url, "FGL2548L900", reload_seconds=0.3)
    assert device.run(timeout=90), device.log[-5:]


@pytest.mark.e2e
def test_juniper_ztp_client_on_sqlite(start_server, juniper_lab):
    server = start_server(JUNIPER_MODELS={"ex4300-48p": IMAGE, "ex4300": ""})
    juniper_ztp_client(server.url)
    _cisco_device(server.url)
    status, body = raw_get(server.url, f"/ztp_fetch/conf/{VCI}/not-a-mac")
    assert status == 400 and b"invalid MAC address" in body
    _check_rows(f"sqlite:///{juniper_lab / 'pnp.sqlite3'}")


@pytest.mark.e2e
@pytest.mark.mariadb
def test_juniper_ztp_client_on_mariadb(start_server, juniper_lab, mariadb_fresh):
    server = start_server(database_url=mariadb_fresh, JUNIPER_MODELS={"ex4300-48p": IMAGE})
    juniper_ztp_client(server.url)
    _cisco_device(server.url)
    _check_rows(mariadb_fresh)
