"""Serial numbers: URL-hostile ones are refused at first contact, and Cisco keys never take a
Juniper device's key.

A serial with ``/``, ``%``, ``:``, a space or non-ASCII letters could not be
managed from the console or the API (``/devices/<SN>``) and, with ``:``, could
name a Juniper row (keyed by its MAC ``aa:bb:cc:dd:ee:ff``): a WORK-REQUEST
with ``SN:aa:bb:cc:dd:ee:ff`` used to turn that row into a broken Cisco row.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.helpers import fixture_text

WR = fixture_text("wr_csr1000v_iosxe-17.3.4a_reload-reason.xml")
SERIAL = "99CWJ5DOLWQ"


def _wr(serial: str) -> bytes:
    return WR.replace(f"SN:{SERIAL}", f"SN:{serial}").encode()


def _rows(app) -> list[tuple]:
    with app.extensions["pnp_engine"].connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT serial_number, vendor, state FROM device_state"))]


@pytest.mark.parametrize("serial", ["AB/CD", "AB%2FCD", "aa:bb:cc:dd:ee:ff", "A B", "BOMé1", "../x", ".hidden",
                                    "-lead", "A?b", "A#b", "A\\b"])
def test_url_hostile_serials_are_refused_with_a_reason(client, app, serial):
    resp = client.post("/pnp/WORK-REQUEST", data=_wr(serial))
    assert resp.status_code == 400
    assert b"not a serial number" in resp.data
    assert _rows(app) == []


def test_wr_with_a_mac_as_serial_leaves_the_juniper_row_alone(make_app, lab):
    (lab / "configs" / "juniper").mkdir()
    (lab / "configs" / "juniper" / "aa-bb-cc-dd-ee-ff.conf").write_text("system { host-name sw1; }\n")
    app = make_app(juniper_models={"ex4300-48p": ""})
    client = app.test_client()
    assert client.get("/ztp_fetch/conf/Juniper-ex4300-48p/aa-bb-cc-dd-ee-ff.conf").status_code == 200
    before = _rows(app)
    assert [(mac, vendor) for mac, vendor, _state in before] == [("aa:bb:cc:dd:ee:ff", "juniper")]
    resp = client.post("/pnp/WORK-REQUEST", data=_wr("aa:bb:cc:dd:ee:ff"))
    assert resp.status_code == 400
    assert _rows(app) == before


def test_plain_serials_are_accepted_and_manageable(client, app):
    for serial in ("FGL2548L0AW", "9AB8F3BQWLR", "SIM-0001", "SIM_2.x"):
        assert client.post("/pnp/WORK-REQUEST", data=_wr(serial)).status_code == 200
    assert {r[0] for r in _rows(app)} == {"FGL2548L0AW", "9AB8F3BQWLR", "SIM-0001", "SIM_2.x"}
