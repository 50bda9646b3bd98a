"""The 13-step ISR1k provisioning workflow as a state machine of plain functions.

Everything the server decides about a device is in this file. Two entry points:

* ``on_work_request(device, request, ctx)``: the device asks for work; the
  decision carries the job to send (or a backoff) and the new state.
* ``on_work_response(device, response, ctx)``: the device reports a job's
  result; the decision carries the new state (the reply is always a bye).

Inputs are a ``DeviceView`` (a snapshot of the DeviceState row), the parsed
message and a ``Context`` (clock, configuration, day-0 lookup, whether the
serial is claimed: an unclaimed serial under REQUIRE_CLAIM only gets a
backoff "waiting to be claimed"). Outputs are a
``Decision``: new state, job or backoff, column changes and history events.
No I/O, no database, no HTTP: storage applies decisions, HTTP renders them.

The steps (the ISR1k workflow of docs/protocol.md §14, with the pitfalls of §15):

 1 CONFIG_REGISTER       cli-config ``config-register 0x2102``
 2 SAVE_CONFIG_REGISTER  cli-exec ``write memory``
 3 CHECK_IMAGE           device-info: verify config-register, compare versions
 4 INSTALL_IMAGE         image-install with md5 + explicit reload
   WAIT_RELOAD           backoff until the work-request says the device reloaded
   VERIFY_IMAGE          device-info: the target version must now run
 5 TRANSFER_TARBALL      file-transfer guestshell tarball → bootflash:
 6 TRANSFER_SCRIPT       file-transfer python script → bootflash:guest-share/
 7 APPLY_DAY0_CONFIG     config-upgrade configs/<SN>.cfg or default.cfg
 8 SAVE_CONFIG           cli-exec ``write memory``
 9 CHECK_BOOTFLASH       device-info filesystem: bootflash free ≥ minimum
   BOOTFLASH_NO_SPACE    parked: backoff until an operator edits the row
10 RUN_EVENT_MANAGER     cli-exec ``event manager run InstallGuestShell``
11 CHECK_GUESTSHELL      cli-exec ``show app-hosting list``
   INSTALL_GUESTSHELL    cli-exec ``app-hosting install appid guestshell package …``
   ENABLE_GUESTSHELL     cli-exec ``guestshell enable``
12 RUN_SCRIPT            cli-exec ``guestshell run python3 …``, output recorded
13 FINISHED              long backoff
   ERROR                 parked with the reason in last_error
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta

from app.common.versions import same_version
from app.config import Config
from app.pnp import protocol as p


class State(enum.StrEnum):
    """Workflow states, stored by name in ``device_state.state``."""

    CONFIG_REGISTER = "CONFIG_REGISTER"
    SAVE_CONFIG_REGISTER = "SAVE_CONFIG_REGISTER"
    CHECK_IMAGE = "CHECK_IMAGE"
    INSTALL_IMAGE = "INSTALL_IMAGE"
    WAIT_RELOAD = "WAIT_RELOAD"
    VERIFY_IMAGE = "VERIFY_IMAGE"
    TRANSFER_TARBALL = "TRANSFER_TARBALL"
    TRANSFER_SCRIPT = "TRANSFER_SCRIPT"
    APPLY_DAY0_CONFIG = "APPLY_DAY0_CONFIG"
    SAVE_CONFIG = "SAVE_CONFIG"
    CHECK_BOOTFLASH = "CHECK_BOOTFLASH"
    BOOTFLASH_NO_SPACE = "BOOTFLASH_NO_SPACE"
    RUN_EVENT_MANAGER = "RUN_EVENT_MANAGER"
    CHECK_GUESTSHELL = "CHECK_GUESTSHELL"
    INSTALL_GUESTSHELL = "INSTALL_GUESTSHELL"
    ENABLE_GUESTSHELL = "ENABLE_GUESTSHELL"
    RUN_SCRIPT = "RUN_SCRIPT"
    FINISHED = "FINISHED"
    ERROR = "ERROR"


INITIAL_STATE = State.CONFIG_REGISTER
PARKED = (State.BOOTFLASH_NO_SPACE, State.ERROR)

#: Seed step number (1-13) of each state, for "step n of 13".
STEP_NUMBER = {
    State.CONFIG_REGISTER: 1, State.SAVE_CONFIG_REGISTER: 2, State.CHECK_IMAGE: 3,
    State.INSTALL_IMAGE: 4, State.WAIT_RELOAD: 4, State.VERIFY_IMAGE: 4,
    State.TRANSFER_TARBALL: 5, State.TRANSFER_SCRIPT: 6, State.APPLY_DAY0_CONFIG: 7,
    State.SAVE_CONFIG: 8, State.CHECK_BOOTFLASH: 9, State.BOOTFLASH_NO_SPACE: 9,
    State.RUN_EVENT_MANAGER: 10, State.CHECK_GUESTSHELL: 11, State.INSTALL_GUESTSHELL: 11,
    State.ENABLE_GUESTSHELL: 11, State.RUN_SCRIPT: 12, State.FINISHED: 13, State.ERROR: 0,
}
TOTAL_STEPS = 13

#: Error codes that no retry can fix (docs/protocol.md §7.3, docs/protocol.md pitfall P7).
HARD_ERRORS = {1403, 1410, 1413, 1803, 1806, 1816, 1825}
#: image-install: "running image already matches" (observed meaning of 1817).
IMAGE_ALREADY_INSTALLED = 1817

_EXEC_ERROR = re.compile(r"^\s*%\s*(Invalid input|Error|Incomplete command|Ambiguous command|"
                         r"Unknown command|Bad|Failed)", re.IGNORECASE | re.MULTILINE)


# --- inputs and outputs -------------------------------------------------------------


@dataclass(frozen=True)
class DeviceView:
    """A read-only snapshot of the DeviceState columns the workflow reads."""

    serial_number: str
    pid: str = ""
    state: str = INITIAL_STATE.value
    running_version: str | None = None
    target_image: str | None = None
    target_version: str | None = None
    pending_service: str | None = None
    pending_correlator: str | None = None
    attempts: int = 0
    retry_after: datetime | None = None
    reload_requested_at: datetime | None = None
    image_installs: int = 0
    guestshell_checks: int = 0
    bootflash_free: int | None = None
    last_error_message: str | None = None
    workflow_state: str | None = None

    @classmethod
    def from_row(cls, row) -> DeviceView:
        """Copy the matching attributes of an ORM row (or any object)."""
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Context:
    """What a decision may depend on besides the device: clock and configuration.

    ``day0(serial)`` returns ``(file name in configs/, md5)`` of the day-0
    config for a serial; it may raise ValueError with a reason (e.g. a template
    missing a variable), which parks the device in ERROR. ``claimed`` is False
    for a serial that must wait (backoff) until an operator claims it
    (REQUIRE_CLAIM with the serial not in the inventory). ``config_url(serial,
    name)`` builds the day-0 config download URL (signed when SIGNED_CONFIG_URLS
    is on, see app/files/signing.py); None means the plain ``/configs/<name>`` URL.
    """

    now: datetime
    config: Config
    day0: Callable[[str], tuple[str, str]] = lambda serial: ("default.cfg", "")
    claimed: bool = True
    config_url: Callable[[str, str], str] | None = None

    def day0_url(self, serial: str, name: str) -> str:
        """Download URL of day-0 config ``name`` for ``serial``: ``config_url`` when the
        service layer provides one (signed, expiring URLs), else the plain /configs URL."""
        if self.config_url is not None:
            return self.config_url(serial, name)
        return self.config.url("configs", name)


WAITING_FOR_CLAIM = "serial not in the inventory: waiting to be claimed by an operator"


@dataclass(frozen=True)
class Job:
    """One PnP service request to send: ``service`` namespace suffix, xmltodict ``body``."""

    service: str
    body: dict
    summary: str


@dataclass(frozen=True)
class Event:
    """A line of device history: ``kind`` is job, response, state, error, info or reload."""

    kind: str
    message: str
    service: str = ""
    correlator: str = ""
    success: bool | None = None
    error_code: str = ""


@dataclass
class Decision:
    """What to do: the reply (job or backoff) and the row changes and events to store."""

    state: State
    job: Job | None = None
    backoff_seconds: int | None = None
    backoff_reason: str = ""
    changes: dict = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


# --- operator rules: moves, retries, backoff acknowledgements ---------------------------

#: What belongs to the step a device is in: dropped whenever it is moved from outside the
#: workflow (an operator action, or a hand edit of ``state`` in SQL).
STEP_RESET = {"pending_service": None, "pending_correlator": None, "attempts": 0,
              "retry_after": None, "guestshell_checks": 0}
#: The last error and the step it stopped in.
CLEAR_ERROR = {"last_error_code": None, "last_error_message": None, "failed_state": None}
#: What "start over at step 1" forgets besides: everything the steps learned or did.
PROGRESS_RESET = {"image_installs": 0, "reload_requested_at": None, "tarball_transferred": False,
                  "script_transferred": False, "configured": False, "guestshell_state": None,
                  "script_output": None, "target_image": None, "target_version": None}


def operator_move(current: str, target: State, *, start_over: bool = False) -> dict:
    """Column changes for an operator moving a device from ``current`` to ``target``.

    The target step starts afresh at the next work-request: its pending job,
    attempts, retry timer and guestshell checks go, and so does the last
    error. Moving a device to ERROR by hand keeps the step it was in as
    ``failed_state`` (a retry resumes it). ``start_over`` (reset) also forgets
    the progress of every step.
    """
    changes = {"state": target.value, "workflow_state": target.value, **STEP_RESET, **CLEAR_ERROR}
    if target == State.ERROR:
        changes["failed_state"] = current if current in State.__members__ else None
    if target != State.FINISHED:
        changes["finished_at"] = None
    if start_over:
        changes.update(PROGRESS_RESET)
    return changes


def step_to_retry(state: str, failed_state: str | None) -> State:
    """The step a retry resumes: for ERROR the step that failed (``failed_state``, stored
    when the device went to ERROR), for BOOTFLASH_NO_SPACE the bootflash check, else the
    current step; step 1 when nothing better is known."""
    if state == State.BOOTFLASH_NO_SPACE:
        return State.CHECK_BOOTFLASH
    if state == State.ERROR:
        state = failed_state or ""
    if state in State.__members__ and State(state) not in PARKED:
        return State(state)
    return INITIAL_STATE


def acknowledges_backoff(response: p.WorkResponse) -> bool:
    """True for the work-response that acknowledges a backoff (not a refusal of one).

    It changes nothing but the device's contact time, so the service layer
    stores it without the row lock (half of a polling device's messages are these).
    """
    return response.service == "backoff" and response.success is not False


# --- small helpers -------------------------------------------------------------------------


def retry_delay(config: Config, attempt: int) -> int:
    """Escalating backoff in seconds before retry number ``attempt`` (1-based)."""
    table = config.retry_backoff or (60,)
    return table[min(max(attempt, 1), len(table)) - 1]


def exec_error(output: str) -> str | None:
    """The first IOS error line (``% Invalid input…``) in cli-exec output, or None."""
    m = _EXEC_ERROR.search(output or "")
    if not m:
        return None
    line_end = output.find("\n", m.start())
    return output[m.start(): line_end if line_end >= 0 else None].strip()


def app_hosting_state(output: str, app_id: str = "guestshell") -> str | None:
    """State column of ``app_id`` in ``show app-hosting list`` output, or None.

    Parses by row and column (docs/protocol.md pitfall P9): the first column must equal the
    app id, the state is the last column.
    """
    for line in (output or "").splitlines():
        columns = line.split()
        if len(columns) >= 2 and columns[0].lower() == app_id.lower():
            return columns[-1].upper()
    return None


def _transition(device: DeviceView, state: State, **changes) -> Decision:
    decision = Decision(state=state, changes={"attempts": 0, "retry_after": None,
                                              "state": state.value, **changes})
    if state.value != device.state:
        decision.events.append(Event("state", f"{device.state} → {state.value}"))
    return decision


def _fail(device: DeviceView, ctx: Context, message: str, code: str = "",
          hard: bool = False, back_to: State | None = None) -> Decision:
    """A failed step: retry with escalating backoff up to MAX_ATTEMPTS, then ERROR.

    ``back_to`` names the state to retry in (default: the current one).
    """
    attempts = device.attempts + 1
    current = State(device.state)
    error_fields = {"last_error_code": code or None, "last_error_message": message,
                    "pending_service": None, "pending_correlator": None}
    event = Event("error", message, error_code=code, success=False)
    if hard or attempts >= ctx.config.max_attempts:
        why = message if hard else f"{message} (gave up after {attempts} attempts)"
        decision = Decision(state=State.ERROR, changes={
            **error_fields, "state": State.ERROR.value, "attempts": attempts,
            "last_error_message": f"{current.value}: {why}", "retry_after": None,
            "failed_state": current.value})
        decision.events += [event, Event("state", f"{device.state} → ERROR: {why}")]
        return decision
    delay = retry_delay(ctx.config, attempts)
    target = back_to or current
    decision = Decision(state=target, changes={
        **error_fields, "state": target.value, "attempts": attempts,
        "retry_after": ctx.now + timedelta(seconds=delay)})
    decision.events.append(event)
    decision.events.append(Event("info", f"retrying {target.value} in {delay} s "
                                         f"(attempt {attempts + 1} of {ctx.config.max_attempts})"))
    return decision


def _backoff(target: State, seconds: int, reason: str, **changes) -> Decision:
    return Decision(state=target, backoff_seconds=int(seconds), backoff_reason=reason,
                    changes=changes)


# --- what to send in each state (work-request) -------------------------------------------


def _exec(command: str, wait: int = 60) -> Job:
    return Job("cli-exec", p.cli_exec_body(command, wait), command)


def _device_info(kind: str = "all") -> Job:
    return Job("device-info", p.device_info_body(kind), f"device-info {kind}")


def _job_for(device: DeviceView, ctx: Context) -> Job | State | Decision:
    """The job for the device's current state; a State means "skip to it"."""
    cfg = ctx.config
    state = State(device.state)
    if state == State.CONFIG_REGISTER:
        cmd = f"config-register {cfg.config_register}"
        return Job("cli-config", p.cli_config_body([cmd]), cmd)
    if state in (State.SAVE_CONFIG_REGISTER, State.SAVE_CONFIG):
        return _exec("write memory", 120)
    if state in (State.CHECK_IMAGE, State.VERIFY_IMAGE):
        return _device_info("all")
    if state == State.INSTALL_IMAGE:
        image = cfg.image_for(device.pid)
        if image is None:
            return _fail(device, ctx, f"no catalogue image for PID {device.pid}", hard=True)
        body = p.image_install_body(cfg.url("images", image.file), image.md5,
                                    f"bootflash:{image.file}")
        return Job("image-install", body, f"image-install {image.file}")
    if state == State.TRANSFER_TARBALL:
        if not cfg.guestshell_tarball:
            return State.TRANSFER_SCRIPT
        name = cfg.guestshell_tarball
        body = p.file_transfer_body(cfg.url("files", name), f"bootflash:{name}")
        return Job("file-transfer", body, f"file-transfer {name}")
    if state == State.TRANSFER_SCRIPT:
        if not cfg.python_script:
            return State.APPLY_DAY0_CONFIG
        name = cfg.python_script
        body = p.file_transfer_body(cfg.url("files", name), f"bootflash:guest-share/{name}")
        return Job("file-transfer", body, f"file-transfer {name}")
    if state == State.APPLY_DAY0_CONFIG:
        try:
            name, md5 = ctx.day0(device.serial_number)
        except ValueError as exc:
            return _fail(device, ctx, f"day-0 config: {exc}", hard=True)
        body = p.config_upgrade_body(ctx.day0_url(device.serial_number, name), md5)
        return Job("config-upgrade", body, f"config-upgrade {name}")
    if state == State.CHECK_BOOTFLASH:
        return _device_info("filesystem")
    if state == State.RUN_EVENT_MANAGER:
        if not (cfg.eem_applet and cfg.guestshell_tarball):
            return State.CHECK_GUESTSHELL
        return _exec(f"event manager run {cfg.eem_applet}", 300)
    if state == State.CHECK_GUESTSHELL:
        if not (cfg.guestshell_tarball or cfg.python_script):
            return State.RUN_SCRIPT
        return _exec("show app-hosting list", 60)
    if state == State.INSTALL_GUESTSHELL:
        if cfg.guestshell_tarball:
            return _exec("app-hosting install appid guestshell package "
                         f"bootflash:{cfg.guestshell_tarball}", 600)
        return _exec("guestshell enable", 600)
    if state == State.ENABLE_GUESTSHELL:
        return _exec("guestshell enable", 600)
    if state == State.RUN_SCRIPT:
        if not cfg.python_script:
            return State.FINISHED
        return _exec(cfg.script_command.format(script=cfg.python_script), 900)
    raise ValueError(f"no job for state {state}")  # pragma: no cover - states are covered


def skipped_steps(config: Config) -> list[tuple[int, str]]:
    """The steps these settings skip, ``[(step number, why)]``, in step order.

    One rule per setting, applied by ``_job_for``: no GUESTSHELL_TARBALL skips
    the copy (5) and the EEM applet that installs it (10); no PYTHON_SCRIPT
    skips its copy (6) and its run (12); with neither, the guestshell checks
    (11) have nothing to serve and are skipped too. No catalogue image: step 4
    is only taken for a PID without one, which then goes to ERROR (no skip).
    """
    skipped = []
    if not config.guestshell_tarball:
        skipped.append((5, "GUESTSHELL_TARBALL not set"))
    if not config.python_script:
        skipped.append((6, "PYTHON_SCRIPT not set"))
    if not config.eem_applet:
        skipped.append((10, "EEM_APPLET not set"))
    elif not config.guestshell_tarball:
        skipped.append((10, "GUESTSHELL_TARBALL not set (the applet installs it)"))
    if not (config.guestshell_tarball or config.python_script):
        skipped.append((11, "neither GUESTSHELL_TARBALL nor PYTHON_SCRIPT set"))
    if not config.python_script:
        skipped.append((12, "PYTHON_SCRIPT not set"))
    return sorted(skipped)


def _idle(device: DeviceView, ctx: Context, state: State) -> Decision:
    """Reply for states where the device only waits (parked, finished)."""
    cfg = ctx.config
    if state == State.FINISHED:
        return _backoff(state, cfg.finished_backoff, "provisioning finished")
    if state == State.BOOTFLASH_NO_SPACE:
        return _backoff(state, cfg.idle_backoff,
                        f"bootflash free space {device.bootflash_free} below "
                        f"{cfg.min_bootflash_free} bytes; waiting for an operator")
    return _backoff(state, cfg.idle_backoff,
                    f"error: {device.last_error_message or 'see server'}; waiting for an operator")


def _wait_reload(device: DeviceView, request: p.WorkRequest, ctx: Context) -> Decision | None:
    """WAIT_RELOAD: backoff until the device says it reloaded (or the timeout passes)."""
    since = device.reload_requested_at or ctx.now
    waited = (ctx.now - since).total_seconds()
    if request.reload_reason is None and waited < ctx.config.reload_timeout:
        return _backoff(State.WAIT_RELOAD, ctx.config.reload_wait,
                        "waiting for the device to reload into the new image")
    return None  # go on to VERIFY_IMAGE now


def on_work_request(device: DeviceView, request: p.WorkRequest, ctx: Context) -> Decision:
    """Decide the reply to a WORK-REQUEST: a job for the current step, or a backoff.

    Total over all states (docs/protocol.md pitfall P3): parked, waiting and finished states
    answer with a backoff, never an empty body. A job still pending when the
    device asks again was lost: it counts as a failed attempt unless the
    device says it reloaded.
    """
    device, events, adopted = _adopt_operator_edit(device)
    if request.reload_reason is not None:
        r = request.reload_reason
        events.append(Event("reload", f"device reloaded: {r.message or 'unknown'} ({r.code})"))
    state = State(device.state) if device.state in State.__members__ else None
    if state is None:
        decision = _backoff(State.ERROR, ctx.config.idle_backoff,
                            f"unknown state {device.state!r} in the database",
                            state=State.ERROR.value,
                            last_error_message=f"unknown state {device.state!r}")
        decision.events = events + [Event("error", f"unknown state {device.state!r}")]
        return _finish(decision, adopted)
    decision = _decide_request(device, request, ctx, state)
    decision.events[:0] = events
    return _finish(decision, adopted)


def _adopt_operator_edit(device: DeviceView) -> tuple[DeviceView, list[Event], dict]:
    """Detect a state changed outside the workflow (SQL, UI) and start that step afresh.

    ``workflow_state`` is the state the workflow itself last wrote; when the
    row's ``state`` differs, an operator moved the device: the pending job,
    attempts, retry timer and guestshell checks belong to the old step and are
    dropped, so the next work-request obeys the edit.
    """
    if not device.workflow_state or device.workflow_state == device.state:
        return device, [], {}
    reset = dict(STEP_RESET)
    event = Event("state", f"{device.workflow_state} → {device.state} (changed outside the "
                           "workflow; starting that step afresh)")
    return _replace(device, **reset), [event], reset


def _finish(decision: Decision, adopted: dict) -> Decision:
    decision.changes = {**adopted, **decision.changes, "workflow_state": decision.state.value}
    decision.changes.setdefault("state", decision.state.value)
    return decision


def _decide_request(device: DeviceView, request: p.WorkRequest, ctx: Context,
                    state: State) -> Decision:
    if state in PARKED or state == State.FINISHED:
        return _idle(device, ctx, state)
    if not ctx.claimed:
        return _backoff(state, ctx.config.idle_backoff, WAITING_FOR_CLAIM,
                        pending_service=None, pending_correlator=None)
    prefix: list[Event] = []
    if state == State.WAIT_RELOAD:
        waiting = _wait_reload(device, request, ctx)
        if waiting is not None:
            return waiting
        prefix.append(Event("state", "WAIT_RELOAD → VERIFY_IMAGE"))
        device = _replace(device, state=State.VERIFY_IMAGE.value)
        state = State.VERIFY_IMAGE
    elif device.pending_correlator and request.reload_reason is None:
        lost = _fail(device, ctx, f"no response to {device.pending_service} "
                                  f"({device.pending_correlator}); the device asked for work again")
        if lost.state == State.ERROR:
            return lost
        prefix, device = lost.events, _replace(device, attempts=lost.changes["attempts"])
    if device.retry_after and ctx.now < device.retry_after:
        wait = max(1, int((device.retry_after - ctx.now).total_seconds()))
        why = "retry after an error" if device.attempts else "waiting before it starts"  # e.g. guestshell checks
        decision = _backoff(state, wait, f"{state.value} {why}",
                            pending_service=None, pending_correlator=None,
                            state=state.value, attempts=device.attempts)
        decision.events = prefix
        return decision
    for _ in range(len(State)):
        outcome = _job_for(device, ctx)
        if isinstance(outcome, Decision):
            outcome.events[:0] = prefix
            return outcome
        if isinstance(outcome, State):
            prefix.append(Event("info", f"{state.value} skipped (not configured)"))
            prefix.append(Event("state", f"{state.value} → {outcome.value}"))
            device = _replace(device, state=outcome.value, attempts=0)
            state = outcome
            if state == State.FINISHED:
                decision = _transition(device, state, finished_at=ctx.now)
                decision.backoff_seconds = ctx.config.finished_backoff
                decision.backoff_reason = "provisioning finished"
                decision.events[:0] = prefix
                return decision
            continue
        changes = {"state": state.value, "pending_service": outcome.service,
                   "pending_correlator": request.correlator, "pending_since": ctx.now,
                   "retry_after": None, "attempts": device.attempts}
        decision = Decision(state=state, job=outcome, changes=changes)
        decision.events = prefix + [Event("job", outcome.summary, service=outcome.service,
                                          correlator=request.correlator)]
        return decision
    raise RuntimeError("skip loop did not end")  # pragma: no cover


def _replace(device: DeviceView, **changes) -> DeviceView:
    return replace(device, **changes)


# --- what a result means (work-response) -------------------------------------------------------


def on_work_response(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    """Decide what a WORK-RESPONSE changes. The HTTP reply is always a bye.

    A response whose service or correlator does not match the pending job
    changes nothing (stale or replayed; docs/protocol.md pitfall P8). A fault (no correlator)
    is attributed to the pending job (P4). ``success="0"`` is recorded with its
    code and message and the step is retried or failed (P7).
    """
    device, events, adopted = _adopt_operator_edit(device)
    decision = _decide_response(device, response, ctx)
    decision.events[:0] = events
    return _finish(decision, adopted)


def _decide_response(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    state = State(device.state) if device.state in State.__members__ else None
    summary = _response_summary(response)
    if response.service == "backoff":
        if response.success is False:
            return Decision(state=state or State.ERROR, events=[Event(
                "response", f"backoff refused: {summary}", service="backoff",
                correlator=response.correlator or "", success=False,
                error_code=response.error.code if response.error else "")])
        return Decision(state=state or State.ERROR)  # acknowledgements of a backoff
    if not device.pending_correlator or state is None:
        return _ignored(device, response, "no job is pending")
    if response.is_fault:
        error = response.error or p.ErrorInfo()
        decision = _fail(device, ctx, f"fault for {device.pending_service}: {error.message}",
                         code=error.code)
        decision.events.insert(0, Event("response", f"fault: {summary}", service="fault",
                                        correlator=device.pending_correlator,
                                        success=False, error_code=error.code))
        return decision
    if response.correlator != device.pending_correlator or \
            response.service != device.pending_service:
        return _ignored(device, response, f"pending is {device.pending_service} "
                                          f"({device.pending_correlator})")
    received = Event("response", summary, service=response.service,
                     correlator=response.correlator or "", success=bool(response.success),
                     error_code=response.error.code if response.error else "")
    decision = _handle_result(device, response, ctx, state)
    decision.events.insert(0, received)
    decision.changes.setdefault("pending_service", None)
    decision.changes.setdefault("pending_correlator", None)
    return decision


def _ignored(device: DeviceView, response: p.WorkResponse, why: str) -> Decision:
    state = State(device.state) if device.state in State.__members__ else State.ERROR
    return Decision(state=state, events=[Event(
        "response", f"ignored {response.service} response ({response.correlator}): {why}",
        service=response.service, correlator=response.correlator or "",
        success=response.success)])


def _response_summary(response: p.WorkResponse) -> str:
    if response.success:
        return "success"
    error = response.error
    if error is None:
        return "failure without errorInfo"
    return f"{error.code}: {error.message}".strip(": ")


def _handle_result(device: DeviceView, response: p.WorkResponse, ctx: Context,
                   state: State) -> Decision:
    if not response.success:
        return _on_failure(device, response, ctx, state)
    handler = _SUCCESS.get(state)
    if handler is None:
        return _ignored(device, response, f"no job expected in {state.value}")
    return handler(device, response, ctx)


def _on_failure(device: DeviceView, response: p.WorkResponse, ctx: Context,
                state: State) -> Decision:
    error = response.error or p.ErrorInfo(message="success=0 without errorInfo")
    if state == State.INSTALL_IMAGE and error.number == IMAGE_ALREADY_INSTALLED:
        decision = _transition(device, State.VERIFY_IMAGE)
        decision.events.append(Event("info", f"{error.code}: image already installed; "
                                             "verifying the running version"))
        return decision
    message = f"{response.service} failed: {error.message or error.code}"
    if response.service_log:
        message += f" | {response.service_log[:500]}"
    return _fail(device, ctx, message, code=error.code, hard=error.number in HARD_ERRORS)


# --- success handlers, one per state ---------------------------------------------------------------


def _next(state: State) -> Callable[[DeviceView, p.WorkResponse, Context], Decision]:
    def handler(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
        problem = exec_error(response.exec_output) if response.service == "cli-exec" else None
        if problem:
            return _fail(device, ctx, f"{response.service} output: {problem}")
        return _transition(device, state)
    return handler


def _config_register_done(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    rejected = response.failed_entries
    if rejected:
        lines = "; ".join(f"{e.cli!r} {e.outcome} {e.error_code} {e.text}".strip() for e in rejected)
        return _fail(device, ctx, f"cli-config rejected: {lines}", hard=True)
    return _transition(device, State.SAVE_CONFIG_REGISTER)


def _report_fields(info: p.DeviceInfo) -> dict:
    bootflash = info.bootflash
    out = {"bootflash_free": bootflash.freespace if bootflash else None}
    if info.version:
        out.update(running_version=info.version, image_file=p.strip_fs(info.image_file),
                   boot_mode=info.boot_mode or None,
                   config_register=info.config_reg_next or info.config_reg or None)
    return out


def _check_image_done(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    cfg = ctx.config
    info = response.device_info or p.DeviceInfo()
    report = _report_fields(info)
    effective = (info.config_reg_next or info.config_reg).lower()
    if effective != cfg.config_register.lower():
        decision = _fail(device, ctx, f"config-register is {effective or 'unknown'}, "
                                      f"expected {cfg.config_register}",
                         back_to=State.CONFIG_REGISTER)
        decision.changes.update(report)
        return decision
    image = cfg.image_for(device.pid)
    if image is None:
        decision = _transition(device, State.TRANSFER_TARBALL, **report)
        decision.events.append(Event("info", f"no catalogue image for PID {device.pid}: "
                                             f"keeping {info.version}"))
        return decision
    target = {"target_image": image.file, "target_version": image.version}
    match = same_version(info.version, image.version)
    if match is None:
        decision = _fail(device, ctx, f"running version {info.version!r} cannot be compared "
                                      f"with target {image.version}", hard=True)
        decision.changes.update(report, **target)
        return decision
    if match:
        decision = _transition(device, State.TRANSFER_TARBALL, **report, **target)
        decision.events.append(Event("info", f"already running {info.version}"))
        return decision
    bootflash = info.bootflash
    needed = image.size + cfg.image_space_margin
    if bootflash is None or bootflash.freespace < needed:
        free = bootflash.freespace if bootflash else "no bootflash"
        decision = _fail(device, ctx, f"bootflash free {free} bytes < image {image.file} "
                                      f"{image.size} + margin {cfg.image_space_margin}", hard=True)
        decision.changes.update(report, **target)
        return decision
    decision = _transition(device, State.INSTALL_IMAGE, **report, **target)
    decision.events.append(Event("info", f"upgrade needed: {info.version} → {image.version}"))
    return decision


def _install_done(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    return _transition(device, State.WAIT_RELOAD, reload_requested_at=ctx.now,
                       image_installs=device.image_installs + 1)


def _verify_image_done(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    info = response.device_info or p.DeviceInfo()
    report = _report_fields(info)
    if same_version(info.version, device.target_version):
        decision = _transition(device, State.TRANSFER_TARBALL, **report)
        decision.events.append(Event("info", f"now running {info.version}"))
        return decision
    why = (f"image did not take: running {info.version or 'unknown'} after "
           f"{device.image_installs} install(s) of {device.target_image}")
    if device.image_installs >= ctx.config.max_attempts:
        decision = _fail(device, ctx, why, hard=True)
    else:
        decision = _fail(device, ctx, why, back_to=State.INSTALL_IMAGE)
    decision.changes.update(report)
    return decision


def _bootflash_done(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    info = response.device_info or p.DeviceInfo()
    bootflash = info.bootflash
    need = ctx.config.min_bootflash_free
    if bootflash is None:
        names = ", ".join(fs.name for fs in info.file_systems) or "none"
        return _fail(device, ctx, f"no bootflash in the file system report ({names})")
    if bootflash.freespace < need:
        message = (f"bootflash ({bootflash.name}) has {bootflash.freespace} bytes free, "
                   f"needs {need}: free space, then set state RUN_EVENT_MANAGER")
        decision = _transition(device, State.BOOTFLASH_NO_SPACE,
                               bootflash_free=bootflash.freespace,
                               last_error_code="BOOTFLASH_NO_SPACE", last_error_message=message)
        decision.events.append(Event("error", message, success=False))
        return decision
    return _transition(device, State.RUN_EVENT_MANAGER, bootflash_free=bootflash.freespace)


def _after_check_delay(ctx: Context) -> datetime:
    return ctx.now + timedelta(seconds=ctx.config.guestshell_check_backoff)


def _eem_done(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    problem = exec_error(response.exec_output)
    if problem:
        return _fail(device, ctx, f"event manager run {ctx.config.eem_applet}: {problem}")
    decision = _transition(device, State.CHECK_GUESTSHELL, guestshell_checks=0)
    decision.changes["retry_after"] = _after_check_delay(ctx)
    return decision


def _guestshell_check_done(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    gs_state = app_hosting_state(response.exec_output)
    checks = device.guestshell_checks + 1
    if gs_state == "RUNNING":
        return _transition(device, State.RUN_SCRIPT, guestshell_checks=checks,
                           guestshell_state=gs_state)
    if checks >= ctx.config.max_guestshell_checks:
        why = f"guestshell is {gs_state or 'not installed'} after {checks} checks"
        decision = _fail(device, ctx, why, hard=True)
        decision.changes.update(guestshell_checks=checks, guestshell_state=gs_state)
        return decision
    if gs_state is None:
        next_state = State.INSTALL_GUESTSHELL
    elif gs_state in ("DEPLOYED", "ACTIVATED", "STOPPED"):
        next_state = State.ENABLE_GUESTSHELL
    else:  # INSTALLING, ACTIVATING...: look again later
        next_state = State.CHECK_GUESTSHELL
    decision = _transition(device, next_state, guestshell_checks=checks,
                           guestshell_state=gs_state)
    decision.events.append(Event("info", f"guestshell {gs_state or 'not found'} "
                                         f"(check {checks} of {ctx.config.max_guestshell_checks})"))
    if next_state == State.CHECK_GUESTSHELL:
        decision.changes["retry_after"] = _after_check_delay(ctx)
    return decision


def _guestshell_action_done(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    problem = exec_error(response.exec_output)
    if problem:
        return _fail(device, ctx, f"guestshell command failed: {problem}")
    decision = _transition(device, State.CHECK_GUESTSHELL)
    decision.changes["retry_after"] = _after_check_delay(ctx)
    return decision


def _script_done(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    output = response.exec_output or ""
    marker = ctx.config.script_success_marker
    record = {"script_output": output[-60000:]}
    if "Traceback (most recent call last)" in output or exec_error(output):
        problem = "python traceback" if "Traceback" in output else exec_error(output)
        decision = _fail(device, ctx, f"script failed: {problem}")
    elif marker and marker not in output:
        decision = _fail(device, ctx, f"script output lacks the success marker {marker!r}")
    else:
        decision = _transition(device, State.FINISHED, finished_at=ctx.now)
    decision.changes.update(record)
    return decision


_SUCCESS: dict[State, Callable[[DeviceView, p.WorkResponse, Context], Decision]] = {
    State.CONFIG_REGISTER: _config_register_done,
    State.SAVE_CONFIG_REGISTER: _next(State.CHECK_IMAGE),
    State.CHECK_IMAGE: _check_image_done,
    State.INSTALL_IMAGE: _install_done,
    State.VERIFY_IMAGE: _verify_image_done,
    State.TRANSFER_TARBALL: lambda d, r, c: _transition(d, State.TRANSFER_SCRIPT,
                                                        tarball_transferred=True),
    State.TRANSFER_SCRIPT: lambda d, r, c: _transition(d, State.APPLY_DAY0_CONFIG,
                                                       script_transferred=True),
    State.APPLY_DAY0_CONFIG: lambda d, r, c: _transition(d, State.SAVE_CONFIG, configured=True),
    State.SAVE_CONFIG: _next(State.CHECK_BOOTFLASH),
    State.CHECK_BOOTFLASH: _bootflash_done,
    State.RUN_EVENT_MANAGER: _eem_done,
    State.CHECK_GUESTSHELL: _guestshell_check_done,
    State.INSTALL_GUESTSHELL: _guestshell_action_done,
    State.ENABLE_GUESTSHELL: _guestshell_action_done,
    State.RUN_SCRIPT: _script_done,
}
