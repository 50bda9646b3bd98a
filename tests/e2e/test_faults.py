"""Each injected fault end to end: the simulator against the real server (run.py, gunicorn), on
SQLite and on MariaDB.

One fleet per backend, one device per fault (they provision at the same time):

* no reload notice after the image reload: the version check finds the reload, long before
  RELOAD_TIMEOUT (left at its 30-minute default);
* one damaged image download (1816): retried, the device finishes with two downloads;
* the same md5 mismatch on every download: ERROR of kind permanent naming the catalogue entry,
  after MAX_ATTEMPTS downloads, no automatic retry;
* work-responses lost after the device acted (image-install, file-transfer, config-upgrade,
  cli-config, cli-exec): checked, never counted as failures; nothing downloaded twice;
* every work-request and work-response sent three times at once: nothing changes by
  itself, each job once, no error;
* transient errors past MAX_ATTEMPTS: ERROR of kind transient, retried automatically after
  ERROR_RETRY_AFTER, then the device finishes.

And, per backend, a server killed (SIGKILL of master and workers) while the device downloads
the image: the device downloads it once more after the version check, and finishes.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from simulator import Faults, SimulatedDevice
from tests.helpers import IMAGE_NAME, TARBALL, ServerProcess, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["sqlite", "mariadb"])
def database(request, lab):
    """The database URL of each backend (MariaDB: the session database, emptied)."""
    if request.param == "mariadb":
        return request.getfixturevalue("mariadb_fresh")
    return f"sqlite:///{lab / 'pnp.sqlite3'}"


def _query(url, sql, **params):
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text(sql), params).mappings().all()
    engine.dispose()
    return rows


def _events(url, serial):
    return _query(url, "SELECT e.kind, e.service, e.error_code, e.message FROM device_event e "
                       "JOIN device_state s ON s.id = e.device_id WHERE s.serial_number = :sn "
                       "ORDER BY e.id", sn=serial)


def _row(url, serial):
    return _query(url, "SELECT * FROM device_state WHERE serial_number = :sn", sn=serial)[0]


def fleet() -> dict[str, Faults]:
    """One device per fault (new Faults each time: their counters go down as they are used)."""
    return {
    "FLTNORELOAD1": Faults(no_reload_notice=True),
    "FLTCORRUPT01": Faults(corrupt_downloads=1),
    "FLTBADMD5001": Faults(corrupt_downloads=99),
    "FLTLOST00001": Faults(lose_response={"image-install": 1, "file-transfer": 2, "config-upgrade": 1,
                                          "cli-config": 1, "cli-exec": 2}),
    "FLTDUPES0001": Faults(duplicate_requests=1000, duplicate_responses=1000, copies=3),
    "FLTAUTORETRY": Faults(transfer_errors=3),
    }
PARKS = {"FLTBADMD5001"}


def test_each_fault_end_to_end(start_server, database):
    server = start_server(database_url=database, MAX_ATTEMPTS=3, DUPLICATE_WINDOW=2,
                          ERROR_RETRY_AFTER=3, ERROR_RETRY_ROUNDS=2, WORKERS=2, THREADS=8)
    devices = {sn: SimulatedDevice(server.url, sn, faults=faults, reload_seconds=0.3, max_sleep=1.0)
               for sn, faults in fleet().items()}
    results = {}

    def run(dev):
        until = (lambda d: d.parked) if dev.serial in PARKS else None
        results[dev.serial] = dev.run(timeout=150, until=until)

    threads = [threading.Thread(target=run, args=(d,)) for d in devices.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results.values()), {sn: d.log[-6:] for sn, d in devices.items() if not results[sn]}
    image = f"{server.url}/images/{IMAGE_NAME}"
    tarball = f"{server.url}/files/{TARBALL}"

    def finished(sn):
        row = _row(database, sn)
        assert row["state"] == "FINISHED", (sn, row["last_error_message"])
        assert row["running_version"] == devices[sn].version and devices[sn].guestshell == "RUNNING"
        return row, _events(database, sn)

    # No reload notice: the version check saw the reload; RELOAD_TIMEOUT (1800 s) never waited for.
    row, events = finished("FLTNORELOAD1")
    assert not any(e["kind"] == "reload" and "reload command" in e["message"] for e in events)
    assert any("without a reload notice" in e["message"] for e in events)
    assert devices["FLTNORELOAD1"].downloads[image] == 1

    # One damaged download: retried once, recorded with its code.
    row, events = finished("FLTCORRUPT01")
    assert devices["FLTCORRUPT01"].downloads[image] == 2
    assert [e["error_code"] for e in events if e["kind"] == "error"] == ["PnP Service Error 1816"]

    # The same mismatch every time: permanent ERROR that names the catalogue entry.
    row = _row(database, "FLTBADMD5001")
    assert row["state"] == "ERROR" and row["error_kind"] == "permanent" and row["auto_retry_at"] is None
    assert "same md5 mismatch" in row["last_error_message"] and IMAGE_NAME in row["last_error_message"]
    assert row["failed_state"] == "INSTALL_IMAGE"
    assert devices["FLTBADMD5001"].downloads[image] == 3
    assert "waiting for an operator" in devices["FLTBADMD5001"].last_backoff_reason

    # Lost work-responses: unknown outcomes, checked; never a failed attempt, nothing twice.
    row, events = finished("FLTLOST00001")
    lost = devices["FLTLOST00001"]
    assert lost.downloads[image] == 1 and lost.downloads[tarball] == 1
    assert not [e for e in events if e["kind"] == "error"], [e["message"] for e in events if e["kind"] == "error"]
    unknown = [e["message"] for e in events if e["kind"] == "unknown"]
    assert len(unknown) >= 6 and all("not counted as a failure" in m for m in unknown)
    assert any(f"bootflash:{IMAGE_NAME} already there" in e["message"] for e in events)
    assert any(f"bootflash:{TARBALL} already there" in e["message"] for e in events)

    # Duplicates: every message three times at once; each job sent once, no error, no ERROR.
    row, events = finished("FLTDUPES0001")
    assert not [e for e in events if e["kind"] in ("error", "unknown")]
    assert any(e["kind"] == "response" and e["message"].startswith("ignored") for e in events)
    jobs = [e["message"] for e in events if e["kind"] == "job"]
    assert len(jobs) == 13, jobs  # the 13 jobs of a clean run, none twice
    assert devices["FLTDUPES0001"].downloads[image] == 1

    # Transient errors past MAX_ATTEMPTS: ERROR (transient), retried automatically, finished.
    row, events = finished("FLTAUTORETRY")
    assert row["auto_retry_rounds"] == 1 and row["error_kind"] is None
    messages = [e["message"] for e in events]
    assert any("ERROR (transient)" in m and "automatic retry at" in m for m in messages)
    assert any("automatic retry, round 1 of 2" in m for m in messages)


def test_error_kind_and_next_retry_in_the_api_and_dashboard(make_app, database):
    """The API, the dashboard and the device page show which kind of ERROR a device is in
    and when it is tried again."""
    from app.pnp import protocol as p
    from app.pnp import service
    from tests.helpers import fixture_text

    app = make_app(database_url=database, admin_token="t" * 32, admin_password="pw-" + "p" * 16,
                   max_attempts=1, error_retry_after=900)
    sessions = app.extensions["pnp_sessions"]
    config = app.config["PNP"]
    raw = fixture_text("wr_csr1000v_iosxe-17.3.4a_reload-reason.xml").replace("99CWJ5DOLWQ", "FLTAPI00001")
    wr = p.parse_work_request(raw.encode())
    service.work_request(sessions, config, wr, raw.encode(), "127.0.0.1")
    fail = (f'<pnp xmlns="urn:cisco:pnp" version="1.0" udi="{wr.udi.raw}"><response '
            f'xmlns="urn:cisco:pnp:cli-config" correlator="{wr.correlator}" success="0"><errorInfo>'
            '<errorCode>PnP Service Error 1202</errorCode><errorMessage>busy</errorMessage>'
            '</errorInfo></response></pnp>')
    service.work_response(sessions, config, p.parse_work_response(fail.encode()), fail.encode(), None)
    client = app.test_client()
    body = client.get("/api/v1/devices/FLTAPI00001", headers={"Authorization": "Bearer " + "t" * 32}).get_json()
    summary = body["summary"]
    assert summary["state"] == "ERROR" and summary["error_kind"] == "transient"
    assert summary["auto_retry_at"] is not None
    listing = client.get("/api/v1/devices?state=ERROR", headers={"Authorization": "Bearer " + "t" * 32})
    assert "transient" in listing.get_data(as_text=True)
    from tests.api.test_api import log_in

    assert log_in(client, "pw-" + "p" * 16).status_code == 302
    page = client.get("/devices/FLTAPI00001/status").get_data(as_text=True)
    assert "ERROR (transient): automatic retry at" in page
    table = client.get("/dashboard/table?state=ERROR").get_data(as_text=True)
    assert "transient, retry" in table


BIG_IMAGE = 48 * 1024 * 1024  # larger than the socket buffers: a kill cuts the download


def test_server_killed_mid_download_costs_one_more_download(lab, database):
    """SIGKILL of master and workers while the image streams: the device's image-install
    fails and its work-response meets a dead server; after the restart the outcome is
    unknown, the version check finds the old image, and the image is sent once more."""
    with (lab / "images" / IMAGE_NAME).open("wb") as f:
        f.write(os.urandom(BIG_IMAGE))
    server = ServerProcess(lab, free_port(), database, DUPLICATE_WINDOW=1)
    server.start()
    dev = SimulatedDevice(server.url, "FLTRESTART01", reload_seconds=0.3, max_sleep=1.0, http_timeout=20)
    image = f"{server.url}/images/{IMAGE_NAME}"
    killed = threading.Event()
    restarter = threading.Thread(target=lambda: restart_later())

    def restart_later():
        time.sleep(1.5)  # the device's work-response (1829) meets the dead server meanwhile
        server.start()

    def hook(resp, *args, **kwargs):
        if resp.url == image and not killed.is_set():
            killed.set()
            server.kill()  # while the device reads the body: the transfer is cut
            restarter.start()
        return resp

    dev.http.hooks["response"].append(hook)
    try:
        assert dev.run(timeout=120), dev.log[-8:]
    finally:
        if restarter.is_alive():
            restarter.join()
        server.stop()
    assert killed.is_set()
    assert dev.download_starts[image] == 2 and dev.downloads[image] == 1, "one cut, one whole"
    row = _row(database, "FLTRESTART01")
    assert row["state"] == "FINISHED" and row["attempts"] == 0
    events = _events(database, "FLTRESTART01")
    assert any(e["kind"] == "unknown" and "image-install" in e["message"] for e in events)
    assert not [e for e in events if e["kind"] == "error"]
    assert [e["message"] for e in events if e["kind"] == "job"].count(f"image-install {IMAGE_NAME}") == 2
