"""Serial numbers compare exactly on MariaDB too (binary collation, migration 0009).

MariaDB's default utf8mb4 collations ignore case and accents, so
``SN:M2CASEabc`` and ``SN:M2CASEABC`` used to share one row; the inventory
lookup matched the wrong serial the same way.
"""

from __future__ import annotations

from sqlalchemy import create_engine, text

from simulator import SimulatedDevice


def test_serials_differing_in_case_are_two_devices(make_app, mariadb_fresh):
    app = make_app(database_url=mariadb_fresh)
    client = app.test_client()
    for serial in ("M2CASEabc", "M2CASEABC", "M2CASEAbc"):
        wr = SimulatedDevice("http://127.0.0.1:9", serial).work_request_xml("C-1")
        assert client.post("/pnp/WORK-REQUEST", data=wr).status_code == 200
    engine = create_engine(mariadb_fresh)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT serial_number FROM device_state WHERE serial_number LIKE 'M2CASE%'")).scalars()
        assert sorted(rows) == ["M2CASEABC", "M2CASEAbc", "M2CASEabc"]
        assert conn.execute(text("SELECT count(*) FROM device_state WHERE serial_number = 'm2caseabc'")).scalar() == 0
        collations = conn.execute(text(
            "SELECT table_name, collation_name FROM information_schema.columns WHERE table_schema = DATABASE() "
            "AND column_name = 'serial_number' AND table_name IN ('device_state', 'inventory')")).all()
    engine.dispose()
    assert {c for _t, c in collations} == {"utf8mb4_bin"}, collations
