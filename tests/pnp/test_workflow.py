"""The workflow state machine as pure functions: state + device report in, next state + job out.

Covers the pitfalls of docs/protocol.md §15 that live in
the workflow: P1 (file systems), P2 (versions, install mode), P3 (total over
states), P4 (faults), P7 (retry limits, hard errors), P8 (correlators), P9
(results verified), and the reload handling of docs/protocol.md §10.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

import pytest

from app.pnp import protocol as p
from app.pnp import workflow as wf
from app.pnp.workflow import State
from tests.helpers import IMAGE_NAME, fixture_text

NOW = datetime(2026, 11, 22, 12, 0, 0)
UDI = "PID:C1131-8PWB,VID:V01,SN:FGL2548L0AW"


@pytest.fixture
def ctx(make_config):
    return wf.Context(now=NOW, config=make_config(max_attempts=3, retry_backoff=(30, 60)),
                      day0=lambda sn: ("default.cfg", "0" * 32))


def device(**kw) -> wf.DeviceView:
    base = dict(serial_number="FGL2548L0AW", pid="C1131-8PWB", state="CONFIG_REGISTER")
    base.update(kw)
    if "workflow_state" not in kw:
        base["workflow_state"] = base["state"]
    return wf.DeviceView(**base)


def wr(correlator="C-1", reason=False) -> p.WorkRequest:
    rr = p.ReloadReason("reload command", "PnP Service Info 2408") if reason else None
    return p.WorkRequest(udi=p.Udi.parse(UDI), correlator=correlator, reload_reason=rr)


def resp(service, correlator="C-1", success=True, **kw) -> p.WorkResponse:
    return p.WorkResponse(udi=p.Udi.parse(UDI), service=service, correlator=correlator,
                          success=success, **kw)


def info(version="17.9.4a", image="bootflash:c1100-universalk9.17.09.04a.SPA.bin", reg="0x2102",
         free=5_000_000_000, fs_name="bootflash", reg_next="") -> p.DeviceInfo:
    return p.DeviceInfo(version=version, image_file=image, config_reg=reg, config_reg_next=reg_next,
                        file_systems=(p.FileSystem("webui", "disk", 10**9, 10**9),
                                      p.FileSystem(fs_name, "disk", 7 * 10**9, free)))


def pending(state, service, **kw):
    return device(state=state, pending_service=service, pending_correlator="C-1", **kw)


# --- P3: every state answers a work-request with a non-empty, valid message ----------------------


@pytest.mark.parametrize("state", list(State))
def test_every_state_answers_work_request_with_a_job_or_backoff(ctx, state):
    dev = device(state=state.value, target_version="17.12.3a", target_image=IMAGE_NAME,
                 reload_requested_at=NOW - timedelta(seconds=5))
    decision = wf.on_work_request(dev, wr(), ctx)
    assert (decision.job is not None) != (decision.backoff_seconds is not None)
    from app.pnp.service import render

    root = ET.fromstring(render(decision, UDI, "C-1"))
    assert root.tag == "{urn:cisco:pnp}pnp" and root[0].get("correlator") == "C-1"
    assert decision.changes["workflow_state"] == decision.state.value


def test_unknown_state_in_database_parks_with_reason(ctx):
    decision = wf.on_work_request(device(state="BOGUS"), wr(), ctx)
    assert decision.state == State.ERROR and decision.backoff_seconds
    assert "BOGUS" in decision.changes["last_error_message"]


def test_first_job_is_config_register_and_is_pending(ctx):
    decision = wf.on_work_request(device(), wr("C-9"), ctx)
    assert decision.job.service == "cli-config" and "config-register 0x2102" in decision.job.summary
    assert decision.changes["pending_correlator"] == "C-9"
    assert decision.changes["pending_service"] == "cli-config"


# --- P8: correlator and service must match the pending job ---------------------------------------


def test_stale_correlator_changes_nothing(ctx):
    decision = wf.on_work_response(pending("CONFIG_REGISTER", "cli-config"),
                                   resp("cli-config", correlator="OLD"), ctx)
    assert decision.state == State.CONFIG_REGISTER
    assert set(decision.changes) == {"workflow_state", "state"}
    assert decision.events[0].message.startswith("ignored")


def test_wrong_service_changes_nothing(ctx):
    decision = wf.on_work_response(pending("CONFIG_REGISTER", "cli-config"), resp("cli-exec"), ctx)
    assert "pending_correlator" not in decision.changes


def test_response_without_pending_job_is_ignored(ctx):
    decision = wf.on_work_response(device(state="CHECK_IMAGE"), resp("device-info"), ctx)
    assert decision.state == State.CHECK_IMAGE and "attempts" not in decision.changes


# --- P4: faults are attributed to the pending job -----------------------------------------------


def test_fault_counts_as_failed_attempt_of_pending_job(ctx):
    fault = p.parse_work_response(fixture_text("resp_fault_reconstructed.xml"))
    decision = wf.on_work_response(pending("TRANSFER_TARBALL", "file-transfer"), fault, ctx)
    assert decision.state == State.TRANSFER_TARBALL and decision.changes["attempts"] == 1
    assert decision.changes["last_error_code"] == "XSVC:Client"
    assert "unknown XML tag" in decision.changes["last_error_message"]
    assert decision.changes["retry_after"] == NOW + timedelta(seconds=30)


# --- P7: retries with escalating backoff, limits, hard errors -----------------------------------------


def test_soft_error_retries_with_escalating_backoff_then_error(ctx):
    err = p.ErrorInfo("PnP Service Error 1702", "File copy failed")
    d1 = wf.on_work_response(pending("TRANSFER_TARBALL", "file-transfer"),
                             resp("file-transfer", success=False, error=err), ctx)
    assert d1.state == State.TRANSFER_TARBALL and d1.changes["retry_after"] == NOW + timedelta(seconds=30)
    assert d1.changes["last_error_code"] == "PnP Service Error 1702"
    # Before retry_after: a backoff for the remaining time, not the job.
    waiting = device(state="TRANSFER_TARBALL", attempts=1, retry_after=NOW + timedelta(seconds=30))
    d_wait = wf.on_work_request(waiting, wr("C-2"), ctx)
    assert d_wait.job is None and d_wait.backoff_seconds == 30
    # After it: the job again.
    d_retry = wf.on_work_request(dataclasses.replace(waiting, retry_after=NOW), wr("C-2"), ctx)
    assert d_retry.job.service == "file-transfer"
    d2 = wf.on_work_response(pending("TRANSFER_TARBALL", "file-transfer", attempts=1),
                             resp("file-transfer", success=False, error=err), ctx)
    assert d2.changes["retry_after"] == NOW + timedelta(seconds=60)
    d3 = wf.on_work_response(pending("TRANSFER_TARBALL", "file-transfer", attempts=2),
                             resp("file-transfer", success=False, error=err), ctx)
    assert d3.state == State.ERROR and "gave up after 3 attempts" in d3.changes["last_error_message"]


@pytest.mark.parametrize("code", [1803, 1806, 1825])
def test_hard_image_errors_go_straight_to_error(ctx, code):
    err = p.ErrorInfo(f"PnP Service Error {code}", "boom")
    decision = wf.on_work_response(pending("INSTALL_IMAGE", "image-install"),
                                   resp("image-install", success=False, error=err), ctx)
    assert decision.state == State.ERROR and decision.changes["last_error_code"] == f"PnP Service Error {code}"


def test_1817_means_image_already_installed(ctx):
    err = p.ErrorInfo("PnP Service Error 1817", "image signature verified")
    decision = wf.on_work_response(pending("INSTALL_IMAGE", "image-install"),
                                   resp("image-install", success=False, error=err), ctx)
    assert decision.state == State.VERIFY_IMAGE


def test_parked_states_back_off_with_reason(ctx):
    for state in ("ERROR", "BOOTFLASH_NO_SPACE"):
        decision = wf.on_work_request(device(state=state, last_error_message="x", bootflash_free=5), wr(), ctx)
        assert decision.job is None and "operator" in decision.backoff_reason


def test_finished_gets_long_backoff(ctx):
    decision = wf.on_work_request(device(state="FINISHED"), wr(), ctx)
    assert decision.backoff_seconds == ctx.config.finished_backoff


def test_lost_job_is_resent_not_counted_as_a_failure(ctx):
    decision = wf.on_work_request(pending("SAVE_CONFIG", "cli-exec"), wr("C-2"), ctx)
    assert decision.job.summary == "write memory" and decision.changes["attempts"] == 0
    assert decision.changes["unknown_outcomes"] == 1
    assert decision.changes["pending_correlator"] == "C-2"
    assert [e.kind for e in decision.events][:1] == ["unknown"]


# --- step 1-3: config-register verified, image by version (P2, P9) --------------------------------------


def test_rejected_cli_config_line_fails_the_step(ctx):
    entry = p.ResultEntry(1, "config-register 0x2102", "failure", "X", "% Invalid input")
    decision = wf.on_work_response(pending("CONFIG_REGISTER", "cli-config"),
                                   resp("cli-config", result_entries=(entry,)), ctx)
    assert decision.state == State.ERROR and "rejected" in decision.changes["last_error_message"]


def test_config_register_not_applied_goes_back(ctx):
    decision = wf.on_work_response(pending("CHECK_IMAGE", "device-info"),
                                   resp("device-info", device_info=info(reg="0x2142")), ctx)
    assert decision.state == State.CONFIG_REGISTER and decision.changes["attempts"] == 1


def test_config_register_next_counts(ctx):
    decision = wf.on_work_response(pending("CHECK_IMAGE", "device-info"),
                                   resp("device-info", device_info=info(reg="0x2142", reg_next="0x2102")), ctx)
    assert decision.state == State.INSTALL_IMAGE


def test_padded_file_version_matches_device_version(ctx):
    decision = wf.on_work_response(pending("CHECK_IMAGE", "device-info"),
                                   resp("device-info", device_info=info(version="17.12.3a")), ctx)
    assert decision.state == State.TRANSFER_TARBALL, "17.12.3a == 17.12.03a: no upgrade"


def test_install_mode_device_on_target_is_not_upgraded_again(ctx):
    decision = wf.on_work_response(
        pending("CHECK_IMAGE", "device-info"),
        resp("device-info", device_info=info(version="17.12.3a", image="bootflash:packages.conf")), ctx)
    assert decision.state == State.TRANSFER_TARBALL
    assert decision.changes["boot_mode"] == "install" and decision.changes["image_file"] == "packages.conf"


def test_old_version_needs_install(ctx):
    decision = wf.on_work_response(pending("CHECK_IMAGE", "device-info"),
                                   resp("device-info", device_info=info()), ctx)
    assert decision.state == State.INSTALL_IMAGE and decision.changes["target_version"] == "17.12.3a"
    job = wf.on_work_request(device(state="INSTALL_IMAGE"), wr("C-5"), ctx).job
    image = job.body["image"]["copy"]
    assert image["source"]["location"].endswith(f"/images/{IMAGE_NAME}")
    assert image["source"]["checksum"] == ctx.config.images[0].md5
    assert image["destination"]["location"] == f"bootflash:{IMAGE_NAME}"
    assert "reload" in job.body


def test_classic_ios_version_is_flagged_not_upgraded(ctx):
    decision = wf.on_work_response(pending("CHECK_IMAGE", "device-info"),
                                   resp("device-info", device_info=info(version="15.5(20140930:030825)")), ctx)
    assert decision.state == State.ERROR and "cannot be compared" in decision.changes["last_error_message"]


def test_no_space_for_image_is_an_error_with_reason(ctx):
    decision = wf.on_work_response(pending("CHECK_IMAGE", "device-info"),
                                   resp("device-info", device_info=info(free=1000)), ctx)
    assert decision.state == State.ERROR and "bootflash free 1000" in decision.changes["last_error_message"]


def test_pid_without_catalogue_entry_keeps_its_image(ctx):
    dev = pending("CHECK_IMAGE", "device-info", pid="ISR4451-X/K9")
    decision = wf.on_work_response(dev, resp("device-info", device_info=info()), ctx)
    assert decision.state == State.TRANSFER_TARBALL


# --- step 4: reload handling (docs/protocol.md §10) -------------------------------------------------------------


def test_install_ack_waits_for_reload_then_verifies(ctx):
    d = wf.on_work_response(pending("INSTALL_IMAGE", "image-install"), resp("image-install"), ctx)
    assert d.state == State.WAIT_RELOAD and d.changes["image_installs"] == 1
    waiting = device(state="WAIT_RELOAD", reload_requested_at=NOW, image_installs=1,
                     target_version="17.12.3a")
    early = wf.on_work_request(waiting, wr("C-6"), ctx)
    assert early.job is None and early.state == State.WAIT_RELOAD, "an early poll gets a backoff"
    back = wf.on_work_request(waiting, wr("C-7", reason=True), ctx)
    assert back.state == State.VERIFY_IMAGE and back.job.service == "device-info"


def test_reload_timeout_verifies_anyway(ctx):
    waiting = device(state="WAIT_RELOAD", reload_requested_at=NOW - timedelta(hours=1))
    assert wf.on_work_request(waiting, wr(), ctx).job.service == "device-info"


def test_image_that_does_not_take_is_not_installed_forever(ctx):
    dev = pending("VERIFY_IMAGE", "device-info", target_version="17.12.3a", image_installs=1)
    d1 = wf.on_work_response(dev, resp("device-info", device_info=info()), ctx)
    assert d1.state == State.INSTALL_IMAGE and "did not take" in d1.changes["last_error_message"]
    dev3 = dataclasses.replace(dev, image_installs=3)
    d3 = wf.on_work_response(dev3, resp("device-info", device_info=info()), ctx)
    assert d3.state == State.ERROR


# --- steps 5-13 ------------------------------------------------------------------------------------------------


def test_file_transfers_target_bootflash_and_guest_share(ctx):
    tar = wf.on_work_request(device(state="TRANSFER_TARBALL"), wr(), ctx).job
    assert tar.body["fileTransfer"]["copy"]["destination"]["location"] == "bootflash:guestshell.17.09.01a.tar"
    script = wf.on_work_request(device(state="TRANSFER_SCRIPT"), wr(), ctx).job
    assert script.body["fileTransfer"]["copy"]["destination"]["location"] == "bootflash:guest-share/pxs.py"


def test_unconfigured_files_are_skipped(make_config):
    ctx = wf.Context(now=NOW, config=make_config(guestshell_tarball="", python_script=""))
    decision = wf.on_work_request(device(state="TRANSFER_TARBALL"), wr(), ctx)
    assert decision.job.service == "config-upgrade" and decision.state == State.APPLY_DAY0_CONFIG


def test_day0_config_job_carries_url_and_md5(ctx):
    job = wf.on_work_request(device(state="APPLY_DAY0_CONFIG"), wr(), ctx).job
    assert job.body["config"]["copy"]["source"]["location"].endswith("/configs/default.cfg")
    assert job.body["config"]["copy"]["source"]["checksum"] == "0" * 32 and "noReload" in job.body


def test_day0_lookup_error_parks_device(make_config):
    def broken(serial):
        raise ValueError("template needs 'hostname'")
    ctx = wf.Context(now=NOW, config=make_config(), day0=broken)
    decision = wf.on_work_request(device(state="APPLY_DAY0_CONFIG"), wr(), ctx)
    assert decision.state == State.ERROR and "hostname" in decision.changes["last_error_message"]


@pytest.mark.parametrize("fs_name", ["bootflash", "flash", "flash0"])
def test_bootflash_selected_by_name_not_position(ctx, fs_name):
    decision = wf.on_work_response(pending("CHECK_BOOTFLASH", "device-info"),
                                   resp("device-info", device_info=info(free=100, fs_name=fs_name)), ctx)
    assert decision.state == State.BOOTFLASH_NO_SPACE, "webui's free space must not count"
    assert decision.changes["bootflash_free"] == 100


def test_enough_bootflash_runs_event_manager(ctx):
    decision = wf.on_work_response(pending("CHECK_BOOTFLASH", "device-info"),
                                   resp("device-info", device_info=info(free=2 * 10**9)), ctx)
    assert decision.state == State.RUN_EVENT_MANAGER
    job = wf.on_work_request(device(state="RUN_EVENT_MANAGER"), wr(), ctx).job
    assert job.summary == "event manager run InstallGuestShell"


APP_LIST = "App id                                   State\n------\nguestshell                               {}"


@pytest.mark.parametrize("gs_state, next_state", [
    ("RUNNING", State.RUN_SCRIPT), ("DEPLOYED", State.ENABLE_GUESTSHELL),
    ("STOPPED", State.ENABLE_GUESTSHELL), ("INSTALLING", State.CHECK_GUESTSHELL),
])
def test_guestshell_states(ctx, gs_state, next_state):
    decision = wf.on_work_response(pending("CHECK_GUESTSHELL", "cli-exec"),
                                   resp("cli-exec", exec_output=APP_LIST.format(gs_state)), ctx)
    assert decision.state == next_state


def test_guestshell_not_found_installs_and_checks_are_bounded(ctx):
    d = wf.on_work_response(pending("CHECK_GUESTSHELL", "cli-exec"), resp("cli-exec", exec_output="No App found"), ctx)
    assert d.state == State.INSTALL_GUESTSHELL
    job = wf.on_work_request(device(state="INSTALL_GUESTSHELL"), wr(), ctx).job
    assert job.summary == "app-hosting install appid guestshell package bootflash:guestshell.17.09.01a.tar"
    last = pending("CHECK_GUESTSHELL", "cli-exec", guestshell_checks=ctx.config.max_guestshell_checks - 1)
    d_last = wf.on_work_response(last, resp("cli-exec", exec_output=APP_LIST.format("ACTIVATING")), ctx)
    assert d_last.state == State.ERROR and "after 5 checks" in d_last.changes["last_error_message"]


def test_guestshell_parsed_by_column_not_substring():
    assert wf.app_hosting_state("App id   State\nnot-guestshell   RUNNING") is None
    assert wf.app_hosting_state(APP_LIST.format("DEPLOYED")) == "DEPLOYED"


def test_script_output_recorded_and_marker_required(make_config):
    ctx = wf.Context(now=NOW, config=make_config(script_success_marker="PNP-SCRIPT-OK"))
    ok = wf.on_work_response(pending("RUN_SCRIPT", "cli-exec"), resp("cli-exec", exec_output="hi\nPNP-SCRIPT-OK"), ctx)
    assert ok.state == State.FINISHED and ok.changes["finished_at"] == NOW
    assert ok.changes["script_output"] == "hi\nPNP-SCRIPT-OK"
    bad = wf.on_work_response(pending("RUN_SCRIPT", "cli-exec"), resp("cli-exec", exec_output="hi"), ctx)
    assert bad.state == State.RUN_SCRIPT and "marker" in bad.changes["last_error_message"]
    assert bad.changes["script_output"] == "hi"


def test_script_traceback_fails_even_with_success_1(ctx):
    out = "Traceback (most recent call last):\n  File x\nRuntimeError: boom"
    decision = wf.on_work_response(pending("RUN_SCRIPT", "cli-exec"), resp("cli-exec", exec_output=out), ctx)
    assert decision.state == State.RUN_SCRIPT and decision.changes["attempts"] == 1


def test_exec_error_line_fails_write_memory(ctx):
    out = "write memory\n     ^\n% Invalid input detected at '^' marker."
    decision = wf.on_work_response(pending("SAVE_CONFIG", "cli-exec"), resp("cli-exec", exec_output=out), ctx)
    assert decision.state == State.SAVE_CONFIG and "Invalid input" in decision.changes["last_error_message"]


# --- operator edits (the row is the truth) -----------------------------------------------------------------


def test_operator_edit_restarts_the_edited_step(ctx):
    edited = device(state="RUN_EVENT_MANAGER", workflow_state="BOOTFLASH_NO_SPACE", attempts=2,
                    pending_service="device-info", pending_correlator="OLD",
                    retry_after=NOW + timedelta(hours=1))
    decision = wf.on_work_request(edited, wr("C-8"), ctx)
    assert decision.job.summary == "event manager run InstallGuestShell"
    assert decision.changes["attempts"] == 0 and decision.changes["workflow_state"] == "RUN_EVENT_MANAGER"
    assert "changed outside the workflow" in decision.events[0].message


def test_response_to_job_of_a_step_the_operator_left_is_ignored(ctx):
    edited = device(state="RUN_EVENT_MANAGER", workflow_state="CHECK_BOOTFLASH",
                    pending_service="device-info", pending_correlator="C-1")
    decision = wf.on_work_response(edited, resp("device-info", device_info=info(free=1)), ctx)
    assert decision.state == State.RUN_EVENT_MANAGER and decision.changes["pending_correlator"] is None


def test_step_numbers_cover_thirteen_steps():
    assert sorted(set(wf.STEP_NUMBER.values()) - {0}) == list(range(1, 14))


# --- a stale last error is cleared once the failed step succeeds ----------------------------------


def test_last_error_cleared_when_the_failed_step_succeeds(ctx):
    err = p.ErrorInfo("PnP Service Error 1702", "File copy failed")
    failed = wf.on_work_response(pending("SAVE_CONFIG", "cli-exec"),
                                 resp("cli-exec", success=False, error=err), ctx)
    assert failed.state == State.SAVE_CONFIG and failed.changes["last_error_code"] == "PnP Service Error 1702"
    # the retried job succeeds: the device moves on and the old error goes with it
    retried = pending("SAVE_CONFIG", "cli-exec", attempts=1, last_error_code=failed.changes["last_error_code"],
                      last_error_message=failed.changes["last_error_message"])
    done = wf.on_work_response(retried, resp("cli-exec", exec_output="Building configuration...\n[OK]"), ctx)
    assert done.state != State.SAVE_CONFIG
    assert done.changes["last_error_code"] is None and done.changes["last_error_message"] is None


def test_finished_device_drops_a_stale_error_but_parked_keeps_its_reason(ctx):
    stale = wf.on_work_request(device(state="FINISHED", last_error_message="SAVE_CONFIG: old"), wr(), ctx)
    assert stale.changes["last_error_message"] is None and stale.changes["last_error_code"] is None
    parked = wf.on_work_request(device(state="ERROR", last_error_message="x: boom"), wr(), ctx)
    assert "last_error_message" not in parked.changes
    # a step still waiting for its retry keeps the error it is retrying
    waiting = device(state="TRANSFER_TARBALL", attempts=1, retry_after=NOW + timedelta(seconds=30),
                     last_error_message="file-transfer failed")
    assert "last_error_message" not in wf.on_work_request(waiting, wr("C-2"), ctx).changes
