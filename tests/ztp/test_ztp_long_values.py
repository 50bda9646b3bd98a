"""Juniper ZTP rows: a model longer than its column is stored cut and recorded, on SQLite and
MariaDB alike; the device still gets its file and the fetch is in its history."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.ztp.test_ztp_fetch import STATIC

MAC = "02:00:00:00:00:01"
MODEL = "ex4300-" + "4" * 100  # 107 characters; device_state.pid holds 64


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def ztp_url(request, lab):
    if request.param == "sqlite":
        return f"sqlite:///{lab / 'pnp.sqlite3'}"
    return request.getfixturevalue("mariadb_fresh")


def test_long_model_is_stored_cut_and_the_fetch_recorded(lab, make_app, ztp_url):
    folder = lab / "configs" / "juniper"
    folder.mkdir()
    (folder / "02-00-00-00-00-01.conf").write_text(STATIC)
    client = make_app(database_url=ztp_url, juniper_models={}).test_client()
    vci = f"Juniper-{MODEL}-PE3714AB0001"
    resp = client.get(f"/ztp_fetch/conf/{vci}/02-00-00-00-00-01.conf")
    assert resp.status_code == 200 and resp.data.decode() == STATIC
    engine = create_engine(ztp_url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM device_state WHERE serial_number=:m"),
                           {"m": MAC}).mappings().one()
        events = conn.execute(text("SELECT kind, message FROM device_event WHERE device_id=:i "
                                   "ORDER BY id"), {"i": row["id"]}).all()
    engine.dispose()
    assert row["state"] == "ZTP_FETCHING", events  # the start is recorded; the end when the server closes the body
    assert row["vci"] == vci
    assert row["pid"] == MODEL[:64]
    assert [k for k, _ in events] == ["clamped", "fetch"] or [k for k, _ in events] == ["fetch", "clamped"]
    assert "device_state.pid: 107 characters did not fit, stored the first 64" in dict(events)["clamped"]
