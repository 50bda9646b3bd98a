"""The failure model of the workflow, as pure functions: three kinds of outcome kept apart.

* a device-reported failure counts as an attempt (kind from ``ERROR_CODES``, docs/protocol.md §7.3);
* an unknown outcome (the device asks for work while a job is pending) is checked, never
  counted as a failed attempt, and bounded by MAX_UNKNOWN_OUTCOMES;
* an ERROR from a transient or unknown cause is retried automatically; duplicates of a
  work-request change nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.pnp import protocol as p
from app.pnp import workflow as wf
from app.pnp.workflow import State
from tests.helpers import IMAGE_NAME, TARBALL

NOW = datetime(2026, 11, 22, 12, 0, 0)
UDI = "PID:C1131-8PWB,VID:V01,SN:FGL2548L0AW"
TARGET = dict(target_version="17.12.3a", target_image=IMAGE_NAME)


@pytest.fixture
def config(make_config):
    return make_config(max_attempts=3, retry_backoff=(30, 60), max_unknown_outcomes=3,
                       error_retry_after=600, error_retry_rounds=2, duplicate_window=5,
                       reload_wait=120, reload_timeout=1800)


def ctx_at(config, now=NOW, sizes=None):
    sizes = sizes or {}
    return wf.Context(now=now, config=config, day0=lambda sn: ("default.cfg", "0" * 32),
                      file_size=lambda name: sizes.get(name))


@pytest.fixture
def ctx(config):
    return ctx_at(config)


def device(**kw) -> wf.DeviceView:
    base = dict(serial_number="FGL2548L0AW", pid="C1131-8PWB", state="CONFIG_REGISTER")
    base.update(kw)
    base.setdefault("workflow_state", base["state"])
    return wf.DeviceView(**base)


def pending(state, service, since=NOW - timedelta(minutes=5), **kw):
    return device(state=state, pending_service=service, pending_correlator="C-1",
                  pending_since=since, **kw)


def wr(correlator="C-2", reason=False) -> p.WorkRequest:
    rr = p.ReloadReason("reload command", "PnP Service Info 2408") if reason else None
    return p.WorkRequest(udi=p.Udi.parse(UDI), correlator=correlator, reload_reason=rr)


def resp(service, correlator="C-2", success=True, **kw) -> p.WorkResponse:
    return p.WorkResponse(udi=p.Udi.parse(UDI), service=service, correlator=correlator,
                          success=success, **kw)


def info(version="17.9.4a", reg="0x2102") -> p.DeviceInfo:
    return p.DeviceInfo(version=version, image_file="bootflash:x.bin", config_reg=reg,
                        file_systems=(p.FileSystem("bootflash", "disk", 7 * 10**9, 5 * 10**9),))


def as_checked(decision: wf.Decision, base: wf.DeviceView) -> wf.DeviceView:
    """The device after ``decision`` was stored (the columns the workflow reads)."""
    names = {f for f in wf.DeviceView.__dataclass_fields__}
    return wf.DeviceView(**{**base.__dict__, **{k: v for k, v in decision.changes.items() if k in names}})


# --- the table ---------------------------------------------------------------------------------


def test_every_state_is_one_entry_of_the_table_in_step_order():
    assert set(wf.STEPS) == set(State)
    numbers = [step.number for step in wf.STEP_TABLE if step.state != State.ERROR]
    assert numbers == sorted(numbers) and numbers[0] == 1 and numbers[-1] == wf.TOTAL_STEPS
    assert wf.STEP_NUMBER[State.TRANSFER_SCRIPT] == 6 and wf.STEP_NUMBER[State.ERROR] == 0
    for step in wf.STEP_TABLE:
        if step.job is not None:
            assert step.done is not None and step.next is not None, step.state
        if step.checked is not None:
            assert step.check is not None, step.state


def test_error_code_table_follows_the_protocol_reference():
    assert wf.code_kind(1803) == wf.code_kind(1825) == wf.code_kind(1410) == wf.PERMANENT
    assert wf.code_kind(1413) == wf.code_kind(1403) == wf.code_kind(1806) == wf.PERMANENT
    assert wf.code_kind(1702) == wf.code_kind(1829) == wf.code_kind(1404) == wf.TRANSIENT
    assert wf.code_kind(1816) == wf.MISMATCH and wf.code_kind(None) == wf.TRANSIENT
    assert 1816 not in wf.HARD_ERRORS and 1803 in wf.HARD_ERRORS


# --- unknown outcomes: checked, not charged ---------------------------------------------------------


def test_lost_image_install_is_checked_before_any_new_download(ctx):
    dev = pending("INSTALL_IMAGE", "image-install", **TARGET)
    size = ctx.config.image_for(dev.pid).size
    d = wf.on_work_request(dev, wr(), ctx)
    assert d.job.summary == f"dir bootflash:{IMAGE_NAME}" and d.changes["verifying"] is True
    assert d.changes["unknown_outcomes"] == 1 and d.changes.get("attempts", 0) == 0
    assert d.events[0].kind == "unknown" and "not counted as a failure" in d.events[0].message
    checking = as_checked(d, dev)
    listing = f"   7  -rw-  {size}  Dec 1 2026 09:00:00 +00:00  {IMAGE_NAME}\n"
    # The image is on bootflash with its size: no new download; the reload check decides.
    done = wf.on_work_response(checking, resp("cli-exec", exec_output=listing), ctx)
    assert done.state == State.WAIT_RELOAD and done.changes["image_installs"] == 1
    assert done.changes["unknown_outcomes"] == 0 and done.changes["verifying"] is False
    # A cut download (short file) or no file: the install did not happen; sent again, no attempt.
    for output in (listing.replace(str(size), str(size // 2)),
                   f"%Error opening bootflash:/{IMAGE_NAME} (No such file or directory)"):
        again = wf.on_work_response(checking, resp("cli-exec", exec_output=output), ctx)
        assert again.state == State.INSTALL_IMAGE and again.changes["verifying"] is False
        assert "attempts" not in again.changes and "last_error_message" not in again.changes
    job = wf.on_work_request(as_checked(again, checking), wr("C-3"), ctx)
    assert job.job.service == "image-install" and job.changes["unknown_outcomes"] == 1


def test_reload_notice_with_a_pending_install_checks_the_version(ctx):
    dev = pending("INSTALL_IMAGE", "image-install", **TARGET)
    d = wf.on_work_request(dev, wr(reason=True), ctx)
    assert d.job.summary.startswith("dir bootflash:") and "the device reloaded" in d.events[1].message


def test_unknown_outcomes_are_bounded_then_error_of_kind_unknown(ctx):
    dev = pending("SAVE_CONFIG", "cli-exec", unknown_outcomes=3)
    d = wf.on_work_request(dev, wr(), ctx)
    assert d.state == State.ERROR and d.changes["error_kind"] == wf.UNKNOWN
    assert "unknown" in d.changes["last_error_message"] and "MAX_UNKNOWN_OUTCOMES 3" in \
        d.changes["last_error_message"]
    assert d.changes["failed_state"] == "SAVE_CONFIG"
    assert d.changes["auto_retry_at"] == NOW + timedelta(seconds=600)


def test_cheap_steps_are_sent_again(ctx):
    d = wf.on_work_request(pending("CHECK_BOOTFLASH", "device-info"), wr(), ctx)
    assert d.job.summary == "device-info filesystem" and d.changes["unknown_outcomes"] == 1
    assert d.changes["verifying"] is False


def test_lost_transfer_is_checked_on_bootflash_with_its_size(config):
    ctx = ctx_at(config, sizes={TARBALL: 204800})
    dev = pending("TRANSFER_TARBALL", "file-transfer")
    d = wf.on_work_request(dev, wr(), ctx)
    assert d.job.summary == f"dir bootflash:{TARBALL}"
    checking = as_checked(d, dev)
    listing = (f"Directory of bootflash:/{TARBALL}\n\n   12  -rw-        204800  Dec 1 2026 09:00:00 "
               f"+00:00  {TARBALL}\n\n7000000000 bytes total (5000000000 bytes free)")
    ok = wf.on_work_response(checking, resp("cli-exec", exec_output=listing), ctx)
    assert ok.state == State.TRANSFER_SCRIPT and ok.changes["tarball_transferred"] is True
    short = wf.on_work_response(checking, resp("cli-exec", exec_output=listing.replace("204800", "1000")), ctx)
    assert short.state == State.TRANSFER_TARBALL and "1000 bytes, not 204800" in short.events[-1].message
    missing = wf.on_work_response(checking, resp("cli-exec", exec_output=(
        f"%Error opening bootflash:/{TARBALL} (No such file or directory)")), ctx)
    assert missing.state == State.TRANSFER_TARBALL and "not there" in missing.events[-1].message


def test_dir_file_size_parses_listing_lines():
    out = "Directory of bootflash:/guest-share/pxs.py\n\n   99  -rw-   1234  Dec 1 2026 09:00:00 +00:00  pxs.py\n"
    assert wf.dir_file_size(out, "guest-share/pxs.py") == 1234
    assert wf.dir_file_size(out, "other.py") is None
    assert wf.dir_file_size("%Error opening bootflash:/x (No such file or directory)", "x") is None


def test_lost_config_register_is_checked_by_device_info(ctx):
    dev = pending("CONFIG_REGISTER", "cli-config")
    d = wf.on_work_request(dev, wr(), ctx)
    assert d.job.service == "device-info"
    checking = as_checked(d, dev)
    done = wf.on_work_response(checking, resp("device-info", device_info=info(reg="0x2102")), ctx)
    assert done.state == State.SAVE_CONFIG_REGISTER
    again = wf.on_work_response(checking, resp("device-info", device_info=info(reg="0x2142")), ctx)
    assert again.state == State.CONFIG_REGISTER


def test_lost_guestshell_action_goes_to_the_guestshell_check(ctx):
    d = wf.on_work_request(pending("ENABLE_GUESTSHELL", "cli-exec"), wr(), ctx)
    assert d.state == State.CHECK_GUESTSHELL and d.job.summary == "show app-hosting list"


def test_failed_or_faulted_check_sends_the_step_again_without_an_attempt(ctx):
    dev = pending("INSTALL_IMAGE", "cli-exec", verifying=True, unknown_outcomes=1, **TARGET)
    dev = wf.DeviceView(**{**dev.__dict__, "pending_correlator": "C-2"})
    failed = wf.on_work_response(dev, resp("cli-exec", success=False,
                                           error=p.ErrorInfo("PnP Service Error 1301", "x")), ctx)
    assert failed.state == State.INSTALL_IMAGE and "attempts" not in failed.changes
    fault = wf.on_work_response(dev, p.WorkResponse(udi=p.Udi.parse(UDI), service="fault",
                                                    correlator=None, success=None,
                                                    error=p.ErrorInfo("XSVC:Client", "x")), ctx)
    assert fault.state == State.INSTALL_IMAGE and "attempts" not in fault.changes


# --- duplicates ------------------------------------------------------------------------------------


def test_second_request_within_the_window_gets_a_short_backoff_and_changes_nothing(ctx):
    dev = pending("CONFIG_REGISTER", "cli-config", since=NOW - timedelta(seconds=2))
    d = wf.on_work_request(dev, wr(), ctx)
    assert d.job is None and d.backoff_seconds == 3
    assert set(d.changes) <= {"state", "workflow_state"} and d.changes["state"] == "CONFIG_REGISTER"
    assert not d.events


# --- reload detection without the notice ---------------------------------------------------------


def test_wait_reload_without_notice_checks_the_version_after_reload_wait(ctx):
    dev = device(state="WAIT_RELOAD", reload_requested_at=NOW - timedelta(seconds=60), **TARGET)
    early = wf.on_work_request(dev, wr(), ctx)
    assert early.job is None and early.backoff_seconds == 120
    later = device(state="WAIT_RELOAD", reload_requested_at=NOW - timedelta(seconds=130), **TARGET)
    d = wf.on_work_request(later, wr(), ctx)
    assert d.job.service == "device-info" and d.changes["verifying"] is True
    checking = as_checked(d, later)
    done = wf.on_work_response(checking, resp("device-info", device_info=info("17.12.3a")), ctx)
    assert done.state == State.TRANSFER_TARBALL and "without a reload notice" in done.events[-1].message
    still = wf.on_work_response(checking, resp("device-info", device_info=info("17.9.4a")), ctx)
    assert still.state == State.WAIT_RELOAD and still.changes["retry_after"] == NOW + timedelta(seconds=120)
    waiting = wf.on_work_request(as_checked(still, checking), wr("C-3"), ctx)
    assert waiting.job is None


def test_reload_timeout_stays_the_last_resort(ctx):
    dev = device(state="WAIT_RELOAD", reload_requested_at=NOW - timedelta(seconds=1900),
                 retry_after=NOW + timedelta(seconds=60), **TARGET)
    d = wf.on_work_request(dev, wr(), ctx)
    assert d.state == State.VERIFY_IMAGE and d.job.service == "device-info"


# --- transient versus permanent --------------------------------------------------------------------


def test_one_corrupted_download_is_retried_the_same_mismatch_names_the_catalogue(ctx):
    err = p.ErrorInfo("PnP Service Error 1816", "Image signature verify failed")
    once = wf.on_work_response(pending("INSTALL_IMAGE", "image-install", **TARGET),
                               resp("image-install", "C-1", success=False, error=err), ctx)
    assert once.state == State.INSTALL_IMAGE and once.changes["attempts"] == 1
    last = wf.on_work_response(pending("INSTALL_IMAGE", "image-install", attempts=2, **TARGET),
                               resp("image-install", "C-1", success=False, error=err), ctx)
    assert last.state == State.ERROR and last.changes["error_kind"] == wf.PERMANENT
    message = last.changes["last_error_message"]
    assert "same md5 mismatch" in message and IMAGE_NAME in message and "IMAGES entry" in message
    assert last.changes["auto_retry_at"] is None


@pytest.mark.parametrize("code", [1803, 1825, 1410, 1413])
def test_permanent_codes_stay_immediate(ctx, code):
    service = "config-upgrade" if code in (1410, 1413) else "image-install"
    state = "APPLY_DAY0_CONFIG" if code in (1410, 1413) else "INSTALL_IMAGE"
    d = wf.on_work_response(pending(state, service), resp(service, "C-1", success=False,
                                                           error=p.ErrorInfo(f"PnP Service Error {code}", "x")), ctx)
    assert d.state == State.ERROR and d.changes["error_kind"] == wf.PERMANENT
    assert d.changes["auto_retry_at"] is None and d.changes["attempts"] == 1


# --- ERROR is not a dead end ------------------------------------------------------------------------


def test_transient_error_is_retried_automatically_in_rounds(config):
    err = p.ErrorInfo("PnP Service Error 1702", "File copy failed")
    ctx = ctx_at(config)
    dev = pending("TRANSFER_TARBALL", "file-transfer", attempts=2)
    parked = wf.on_work_response(dev, resp("file-transfer", "C-1", success=False, error=err), ctx)
    assert parked.state == State.ERROR and parked.changes["error_kind"] == wf.TRANSIENT
    assert parked.changes["auto_retry_at"] == NOW + timedelta(seconds=600)
    assert "automatic retry at" in parked.events[-1].message
    row = as_checked(parked, dev)
    waiting = wf.on_work_request(row, wr(), ctx_at(config, NOW + timedelta(seconds=100)))
    assert waiting.job is None and "automatic retry in 500 s" in waiting.backoff_reason
    retried = wf.on_work_request(row, wr(), ctx_at(config, NOW + timedelta(seconds=601)))
    assert retried.state == State.TRANSFER_TARBALL and retried.job.service == "file-transfer"
    assert retried.changes["auto_retry_rounds"] == 1 and retried.changes["error_kind"] is None
    assert retried.changes["attempts"] == 0
    assert any("automatic retry, round 1 of 2" in e.message for e in retried.events)
    # After the last round the ERROR waits for an operator.
    spent = wf.DeviceView(**{**dev.__dict__, "auto_retry_rounds": 2})
    final = wf.on_work_response(spent, resp("file-transfer", "C-1", success=False, error=err), ctx)
    assert final.state == State.ERROR and final.changes["auto_retry_at"] is None
    assert "waiting for an operator" in wf.on_work_request(as_checked(final, spent), wr(), ctx).backoff_reason


def test_zero_rounds_disables_automatic_retry(make_config):
    ctx = ctx_at(make_config(error_retry_rounds=0, max_unknown_outcomes=1))
    d = wf.on_work_request(pending("SAVE_CONFIG", "cli-exec", unknown_outcomes=1), wr(), ctx)
    assert d.state == State.ERROR and d.changes["auto_retry_at"] is None


def test_operator_move_takes_over_from_the_automatic_retry():
    changes = wf.operator_move("ERROR", State.TRANSFER_TARBALL)
    assert changes["auto_retry_at"] is None and changes["auto_retry_rounds"] == 0
    assert changes["error_kind"] is None and changes["unknown_outcomes"] == 0
    assert wf.operator_move("SAVE_CONFIG", State.ERROR)["error_kind"] == wf.PERMANENT


def test_sql_edit_out_of_error_drops_the_automatic_retry(ctx):
    dev = device(state="TRANSFER_TARBALL", workflow_state="ERROR", error_kind=wf.TRANSIENT,
                 auto_retry_at=NOW + timedelta(seconds=60), auto_retry_rounds=1)
    d = wf.on_work_request(dev, wr(), ctx)
    assert d.job.service == "file-transfer"
    assert d.changes["auto_retry_at"] is None and d.changes["error_kind"] is None
    assert d.changes["auto_retry_rounds"] == 0
