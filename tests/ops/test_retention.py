"""Growth is bounded: made-up serials and MACs leave no permanent rows, old history is pruned.

* rows never seen past first contact (still in the first step, not in the
  inventory) expire after UNSEEN_DEVICE_EXPIRY; claimed or progressing ones stay;
* ``/ztp_fetch`` for an unknown MAC creates no row at all;
* events older than EVENT_RETENTION are deleted in batches; the device's
  summary (state, times, last error) stays in its row;
* ``python3 run.py db prune`` and the automatic run (PRUNE_INTERVAL) do it.
"""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import text, update

from app.ops.retention import prune
from app.storage.db import utcnow
from app.storage.models import DeviceEvent, DeviceState
from simulator import SimulatedDevice

DAY = 86400


def _count(app, table: str) -> int:
    with app.extensions["pnp_engine"].connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def _age(app, days: float, serials=None) -> None:
    """Pretend rows (and their events) were last heard of ``days`` ago."""
    then = utcnow() - timedelta(days=days)
    with app.extensions["pnp_sessions"].begin() as session:
        stmt = update(DeviceState).values(last_contact=then)
        if serials is not None:
            stmt = stmt.where(DeviceState.serial_number.in_(serials))
        session.execute(stmt)
        session.execute(update(DeviceEvent).values(at=then))


def _wr(serial: str, correlator: str = "C-1") -> str:
    return SimulatedDevice("http://127.0.0.1:9", serial).work_request_xml(correlator)


def test_made_up_serials_expire_and_real_devices_stay(make_app):
    app = make_app(juniper_models={"ex4300-48p": ""})
    client = app.test_client()
    for i in range(2000):
        assert client.post("/pnp/WORK-REQUEST", data=_wr(f"BOGUS{i:05d}")).status_code == 200
    for i in range(50):  # made-up MACs: no row at all
        assert client.get(f"/ztp_fetch/conf/Juniper-ex4300-48p/02-00-00-00-{i // 256:02x}-{i % 256:02x}.conf"
                          ).status_code == 404
    assert _count(app, "device_state") == 2000
    # a claimed serial and one that answered its first job are real devices
    with app.extensions["pnp_sessions"].begin() as session:
        session.execute(text("INSERT INTO inventory (serial_number, hostname, pid, variables, created_at, "
                             "updated_at) VALUES ('BOGUS00001', 'r1', '', '{}', '2026-01-01', '2026-01-01')"))
        session.execute(update(DeviceState).where(DeviceState.serial_number == "BOGUS00002")
                        .values(state="INSTALL_IMAGE"))
    config = app.config["PNP"]
    _age(app, 6)
    assert prune(app.extensions["pnp_sessions"], config, batch=300).devices == 0  # younger than 7 days
    _age(app, 8)
    fresh = "FRESH00001"
    client.post("/pnp/WORK-REQUEST", data=_wr(fresh))
    result = prune(app.extensions["pnp_sessions"], config, batch=300)
    assert result.devices == 1998
    with app.extensions["pnp_engine"].connect() as conn:
        left = set(conn.execute(text("SELECT serial_number FROM device_state")).scalars())
    assert left == {"BOGUS00001", "BOGUS00002", fresh}
    with app.extensions["pnp_engine"].connect() as conn:  # the expired rows' events went with them
        assert conn.execute(text("SELECT count(*) FROM device_event WHERE device_id NOT IN "
                                 "(SELECT id FROM device_state)")).scalar_one() == 0
    assert result.events >= 1998


def test_old_history_is_pruned_in_batches_and_the_summary_stays(make_app):
    app = make_app(event_retention=30 * DAY)
    client = app.test_client()
    for i in range(25):
        client.post("/pnp/WORK-REQUEST", data=_wr("KEEPSUMMARY1", f"C-{i}"))
    with app.extensions["pnp_sessions"].begin() as session:
        session.execute(update(DeviceState).where(DeviceState.serial_number == "KEEPSUMMARY1").values(
            state="ERROR", last_error_code="1803", last_error_message="Source file not found"))
    before = _count(app, "device_event")
    assert before >= 25
    _age(app, 31)
    client.post("/pnp/WORK-REQUEST", data=_wr("RECENT0001"))  # a recent first-contact event
    recent = _count(app, "device_event") - before
    assert recent >= 1
    result = prune(app.extensions["pnp_sessions"], app.config["PNP"], batch=7)
    assert result.events == before
    assert _count(app, "device_event") == recent
    with app.extensions["pnp_engine"].connect() as conn:
        row = conn.execute(text("SELECT state, first_seen, last_error_code, last_error_message FROM device_state "
                                "WHERE serial_number = 'KEEPSUMMARY1'")).one()
    assert (row.state, row.last_error_code, row.last_error_message) == ("ERROR", "1803", "Source file not found")
    assert row.first_seen is not None


def test_run_py_db_prune(make_app, runner, app):
    client = app.test_client()
    for i in range(5):
        client.post("/pnp/WORK-REQUEST", data=_wr(f"CLIBOGUS{i}"))
    _age(app, 8)
    result = runner.invoke(args=["db", "prune"])
    assert result.exit_code == 0, result.output
    assert "expired 5 never-provisioned devices" in result.output
    assert _count(app, "device_state") == 0


def test_automatic_prune_runs_from_the_request_path(make_app):
    app = make_app(prune_interval=1)
    client = app.test_client()
    for i in range(3):
        client.post("/pnp/WORK-REQUEST", data=_wr(f"AUTOBOGUS{i}"))
    _age(app, 8)
    deadline = time.monotonic() + 20
    while _count(app, "device_state") > 0 and time.monotonic() < deadline:
        client.get("/pnp/HELLO")
        time.sleep(0.3)
    assert _count(app, "device_state") == 0
