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

Three kinds of outcome are kept apart (docs/protocol.md §14.3): a failure the device
reports counts as an attempt (``attempts``, MAX_ATTEMPTS; permanent codes of
``ERROR_CODES`` at once); a job without an answer (the device asks for work while it is
pending) is an unknown outcome, counted in ``unknown_outcomes`` (MAX_UNKNOWN_OUTCOMES)
and followed by the step's check before anything is sent again; a server-side problem
never reaches this file. An ERROR of kind transient or unknown is retried automatically
(ERROR_RETRY_AFTER, ERROR_RETRY_ROUNDS).

Each state is one entry of ``STEP_TABLE`` at the end of this file: its step number, job
builder, success handler, failure handler, next state, and the check that finds out
whether its job took effect. The steps (the ISR1k workflow of docs/protocol.md §14,
with the pitfalls of §15):

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

TOTAL_STEPS = 13

# --- kinds of error (docs/protocol.md §7.3) ------------------------------------------------

#: ``error_kind`` of a device in ERROR, and how a device-reported code is treated.
#: permanent: a retry repeats the failure until a person changes something (straight to
#: ERROR, waits for an operator); transient: retried with RETRY_BACKOFF up to MAX_ATTEMPTS,
#: an ERROR after that is retried automatically (ERROR_RETRY_AFTER); unknown: the outcome
#: of a job was never reported (restart, lost message), bounded by MAX_UNKNOWN_OUTCOMES.
PERMANENT, TRANSIENT, UNKNOWN = "permanent", "transient", "unknown"
#: A checksum mismatch: retried like a transient error (one damaged transfer), but the
#: same mismatch on every try means the catalogue md5 is wrong: permanent after the bound.
MISMATCH = "mismatch"

#: PnP error number → kind, the table of docs/protocol.md §7.3 (codes not listed: transient).
ERROR_CODES: dict[int, str] = {
    1200: TRANSIENT, 1201: TRANSIENT, 1202: TRANSIENT,  # cli-config request errors
    1403: PERMANENT,  # APPLY_CFG_HASH_FAILED: config file or md5 wrong
    1404: TRANSIENT,  # APPLY_CFG_COPY_FAILED: config download failed
    1410: PERMANENT,  # CFG_SYNTAX_ERROR
    1412: TRANSIENT,  # CFG_RUNNING_CFG_COPY_FAILED
    1413: PERMANENT,  # CFG_INVALID_INPUT_DETECTED
    1609: TRANSIENT,  # FILESYSTEM_INFO_RETRIEVE
    1700: TRANSIENT, 1701: TRANSIENT, 1702: TRANSIENT,  # file-transfer errors, FILE_CP
    1803: PERMANENT,  # SRC_NOT_FOUND: image URL wrong or file missing
    1806: PERMANENT,  # INVALID_IMAGE_FORMAT
    1816: MISMATCH,  # observed for an md5 mismatch: damaged download or wrong catalogue md5
    1825: PERMANENT,  # NO_SPACE_ON_DEST_FS
    1829: TRANSIENT,  # IMG_COPY_FAILED: image download/copy failed
}
#: Error codes that no retry can fix (docs/protocol.md §7.3, pitfall P7).
HARD_ERRORS = frozenset(code for code, kind in ERROR_CODES.items() if kind == PERMANENT)
#: image-install: "running image already matches" (observed meaning of 1817).
IMAGE_ALREADY_INSTALLED = 1817


def code_kind(number: int | None) -> str:
    """PERMANENT, TRANSIENT or MISMATCH for a PnP error number (docs/protocol.md §7.3)."""
    return ERROR_CODES.get(number, TRANSIENT) if number is not None else TRANSIENT


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
    last_error_code: str | None = None
    workflow_state: str | None = None
    pending_since: datetime | None = None
    failed_state: str | None = None
    unknown_outcomes: int = 0
    verifying: bool = False
    error_kind: str | None = None
    auto_retry_at: datetime | None = None
    auto_retry_rounds: int = 0

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
    file_size: Callable[[str], int | None] = lambda name: None

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
              "retry_after": None, "guestshell_checks": 0, "unknown_outcomes": 0,
              "verifying": False}
#: The last error, its kind, the step it stopped in and its automatic retry.
CLEAR_ERROR = {"last_error_code": None, "last_error_message": None, "failed_state": None,
               "error_kind": None, "auto_retry_at": None}
#: What "start over at step 1" forgets besides: everything the steps learned or did.
PROGRESS_RESET = {"image_installs": 0, "reload_requested_at": None, "tarball_transferred": False,
                  "script_transferred": False, "configured": False, "guestshell_state": None,
                  "script_output": None, "target_image": None, "target_version": None}


def operator_move(current: str, target: State, *, start_over: bool = False) -> dict:
    """Column changes for an operator moving a device from ``current`` to ``target``.

    The target step starts afresh at the next work-request: its pending job,
    attempts, unknown outcomes, retry timer and guestshell checks go, and so do
    the last error and any automatic retry (the operator has taken over). Moving
    a device to ERROR by hand keeps the step it was in as ``failed_state`` (a retry
    resumes it). ``start_over`` (reset) also forgets the progress of every step.
    """
    changes = {"state": target.value, "workflow_state": target.value, **STEP_RESET, **CLEAR_ERROR,
               "auto_retry_rounds": 0}
    if target == State.ERROR:
        changes["failed_state"] = current if current in State.__members__ else None
        changes["error_kind"] = PERMANENT  # put there by a person: a person takes it out
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
    """Move on: a known outcome ends the step's attempts, unknown outcomes and check."""
    decision = Decision(state=state, changes={"attempts": 0, "retry_after": None,
                                              "unknown_outcomes": 0, "verifying": False,
                                              "state": state.value, **changes})
    if state.value != device.state:
        decision.events.append(Event("state", f"{device.state} → {state.value}"))
    return decision


def _to_error(device: DeviceView, ctx: Context, why: str, kind: str, code: str = "",
              **changes) -> Decision:
    """Park in ERROR with the reason, its kind and the step it stopped in.

    An ERROR of kind transient or unknown gets ``auto_retry_at`` (ERROR_RETRY_AFTER from
    now) while the device has automatic rounds left (ERROR_RETRY_ROUNDS); a permanent
    one waits for an operator.
    """
    cfg = ctx.config
    current = State(device.state)
    retry_at = None
    if kind != PERMANENT and cfg.error_retry_rounds > device.auto_retry_rounds:
        retry_at = ctx.now + timedelta(seconds=cfg.error_retry_after)
    decision = Decision(state=State.ERROR, changes={
        "last_error_code": code or None, "pending_service": None, "pending_correlator": None,
        "verifying": False, "state": State.ERROR.value, "retry_after": None,
        "last_error_message": f"{current.value}: {why}", "failed_state": current.value,
        "error_kind": kind, "auto_retry_at": retry_at, **changes})
    then = (f"automatic retry at {retry_at:%Y-%m-%d %H:%M:%S} UTC (round "
            f"{device.auto_retry_rounds + 1} of {cfg.error_retry_rounds})" if retry_at
            else "waiting for an operator")
    decision.events.append(Event("state", f"{device.state} → ERROR ({kind}): {why}; {then}"))
    return decision


def _fail(device: DeviceView, ctx: Context, message: str, code: str = "",
          hard: bool = False, back_to: State | None = None, exhausted: str = TRANSIENT,
          exhausted_why: str = "") -> Decision:
    """A device-reported failure: retry with escalating backoff up to MAX_ATTEMPTS, then ERROR.

    ``hard`` (a permanent cause) goes to ERROR at once. ``back_to`` names the state to
    retry in (default: the current one). ``exhausted`` is the error kind once the
    attempts are used up and ``exhausted_why`` replaces the message then (e.g. naming the
    catalogue entry after the same md5 mismatch on every try).
    """
    attempts = device.attempts + 1
    current = State(device.state)
    event = Event("error", message, error_code=code, success=False)
    if hard or attempts >= ctx.config.max_attempts:
        why = message if hard else f"{exhausted_why or message} (gave up after {attempts} attempts)"
        decision = _to_error(device, ctx, why, PERMANENT if hard else exhausted, code,
                             attempts=attempts, unknown_outcomes=0)
        decision.events.insert(0, event)
        return decision
    delay = retry_delay(ctx.config, attempts)
    target = back_to or current
    decision = Decision(state=target, changes={
        "last_error_code": code or None, "last_error_message": message,
        "pending_service": None, "pending_correlator": None, "verifying": False,
        "state": target.value, "attempts": attempts, "unknown_outcomes": 0,
        "retry_after": ctx.now + timedelta(seconds=delay)})
    decision.events.append(event)
    decision.events.append(Event("info", f"retrying {target.value} in {delay} s "
                                         f"(attempt {attempts + 1} of {ctx.config.max_attempts})"))
    return decision


def _backoff(target: State, seconds: int, reason: str, **changes) -> Decision:
    return Decision(state=target, backoff_seconds=max(1, int(seconds)), backoff_reason=reason,
                    changes=changes)


def _replace(device: DeviceView, **changes) -> DeviceView:
    return replace(device, **changes)


# --- job builders: what each step sends ------------------------------------------------------

JobOutcome = Job | State | Decision
JobBuilder = Callable[[DeviceView, Context], JobOutcome]
Handler = Callable[[DeviceView, p.WorkResponse, Context], Decision]


def _exec(command: str, wait: int = 60) -> Job:
    return Job("cli-exec", p.cli_exec_body(command, wait), command)


def _device_info(kind: str = "all") -> Job:
    return Job("device-info", p.device_info_body(kind), f"device-info {kind}")


def _job_config_register(device: DeviceView, ctx: Context) -> JobOutcome:
    cmd = f"config-register {ctx.config.config_register}"
    return Job("cli-config", p.cli_config_body([cmd]), cmd)


def _job_write_memory(device: DeviceView, ctx: Context) -> JobOutcome:
    return _exec("write memory", 120)


def _job_device_info(device: DeviceView, ctx: Context) -> JobOutcome:
    return _device_info("all")


def _job_filesystem(device: DeviceView, ctx: Context) -> JobOutcome:
    return _device_info("filesystem")


def _job_install_image(device: DeviceView, ctx: Context) -> JobOutcome:
    cfg = ctx.config
    image = cfg.image_for(device.pid)
    if image is None:
        return _fail(device, ctx, f"no catalogue image for PID {device.pid}", hard=True)
    body = p.image_install_body(cfg.url("images", image.file), image.md5, f"bootflash:{image.file}")
    return Job("image-install", body, f"image-install {image.file}")


def _tarball_path(ctx: Context) -> str:
    return ctx.config.guestshell_tarball


def _script_path(ctx: Context) -> str:
    return f"guest-share/{ctx.config.python_script}"


def _job_tarball(device: DeviceView, ctx: Context) -> JobOutcome:
    name = ctx.config.guestshell_tarball
    if not name:
        return State.TRANSFER_SCRIPT
    body = p.file_transfer_body(ctx.config.url("files", name), f"bootflash:{_tarball_path(ctx)}")
    return Job("file-transfer", body, f"file-transfer {name}")


def _job_script(device: DeviceView, ctx: Context) -> JobOutcome:
    name = ctx.config.python_script
    if not name:
        return State.APPLY_DAY0_CONFIG
    body = p.file_transfer_body(ctx.config.url("files", name), f"bootflash:{_script_path(ctx)}")
    return Job("file-transfer", body, f"file-transfer {name}")


def _job_day0(device: DeviceView, ctx: Context) -> JobOutcome:
    try:
        name, md5 = ctx.day0(device.serial_number)
    except ValueError as exc:
        return _fail(device, ctx, f"day-0 config: {exc}", hard=True)
    body = p.config_upgrade_body(ctx.day0_url(device.serial_number, name), md5)
    return Job("config-upgrade", body, f"config-upgrade {name}")


def _job_eem(device: DeviceView, ctx: Context) -> JobOutcome:
    if not (ctx.config.eem_applet and ctx.config.guestshell_tarball):
        return State.CHECK_GUESTSHELL  # nothing for the applet to install (skipped_steps)
    return _exec(f"event manager run {ctx.config.eem_applet}", 300)


def _job_show_guestshell(device: DeviceView, ctx: Context) -> JobOutcome:
    if not (ctx.config.guestshell_tarball or ctx.config.python_script):
        return State.RUN_SCRIPT  # no guestshell needed (skipped_steps)
    return _exec("show app-hosting list", 60)


def _job_install_guestshell(device: DeviceView, ctx: Context) -> JobOutcome:
    if ctx.config.guestshell_tarball:
        return _exec("app-hosting install appid guestshell package "
                     f"bootflash:{ctx.config.guestshell_tarball}", 600)
    return _exec("guestshell enable", 600)


def _job_enable_guestshell(device: DeviceView, ctx: Context) -> JobOutcome:
    return _exec("guestshell enable", 600)


def _job_run_script(device: DeviceView, ctx: Context) -> JobOutcome:
    if not ctx.config.python_script:
        return State.FINISHED
    return _exec(ctx.config.script_command.format(script=ctx.config.python_script), 900)


# --- checks: did the last job take effect? (unknown outcomes) ------------------------------------


def _check_tarball(device: DeviceView, ctx: Context) -> JobOutcome:
    return _exec(f"dir bootflash:{_tarball_path(ctx)}", 60)


def _check_script(device: DeviceView, ctx: Context) -> JobOutcome:
    return _exec(f"dir bootflash:{_script_path(ctx)}", 60)


def _to_state(state: State) -> Callable[[DeviceView, Context], JobOutcome]:
    """A check that is itself a step: go there (its own job finds out)."""
    return lambda device, ctx: state


_DIR_LINE = re.compile(r"^\s*\d+\s+[-dlrwx]{4,}\s+(\d+)\s+.*\s(\S+)\s*$")


def dir_file_size(output: str, path: str) -> int | None:
    """Size in bytes of ``path`` in IOS ``dir bootflash:<path>`` output, None when absent.

    A listing line is ``<inode> <perms> <size> <date…> <name>`` (``12  -rw-  5242880  Dec 1
    2026 09:00:00 +00:00  guestshell.tar``); ``%Error opening …`` or no such line means
    the file is not there.
    """
    name = path.rsplit("/", 1)[-1]
    for line in (output or "").splitlines():
        m = _DIR_LINE.match(line)
        if m and m.group(2).rsplit("/", 1)[-1] == name:
            return int(m.group(1))
    return None


def _not_done(device: DeviceView, why: str, **changes) -> Decision:
    """The check says the step's job did not take effect: it is sent again (no attempt)."""
    state = State(device.state)
    decision = Decision(state=state, changes={"verifying": False, "state": state.value, **changes})
    decision.events.append(Event("info", f"check: {why}; sending {state.value} again"))
    return decision


def _checked_config_register(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    info = response.device_info or p.DeviceInfo()
    effective = (info.config_reg_next or info.config_reg).lower()
    if effective != ctx.config.config_register.lower():
        return _not_done(device, f"config-register is {effective or 'unknown'}")
    decision = _transition(device, STEPS[State.CONFIG_REGISTER].next, **_report_fields(info))
    decision.events.append(Event("info", f"check: config-register already {effective}"))
    return decision


def _check_image(device: DeviceView, ctx: Context) -> JobOutcome:
    image = ctx.config.image_for(device.pid)
    return _exec(f"dir bootflash:{image.file if image else device.target_image}", 60)


def _checked_image(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    """image-install with an unknown outcome: is the image on bootflash with its size?

    Absent (or short: a cut download) means the install did not happen: it is sent again.
    Present means the download took place: the device reloads into it (or already has),
    so on to WAIT_RELOAD, whose version check decides, never a second download.
    """
    image = ctx.config.image_for(device.pid)
    name = image.file if image else (device.target_image or "")
    size = dir_file_size(response.exec_output, name)
    if size is None:
        return _not_done(device, f"bootflash:{name} is not there")
    if image is not None and image.size and size != image.size:
        return _not_done(device, f"bootflash:{name} has {size} bytes, not {image.size}")
    decision = _transition(device, State.WAIT_RELOAD, reload_requested_at=ctx.now,
                           image_installs=device.image_installs + 1)
    decision.events.append(Event("info", f"check: bootflash:{name} already there ({size} bytes); "
                                         "no new download, checking the reload"))
    return decision


def _checked_reload(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    """WAIT_RELOAD without a reload notice: the target version running means it reloaded."""
    info = response.device_info or p.DeviceInfo()
    report = _report_fields(info)
    if same_version(info.version, device.target_version):
        decision = _transition(device, State.TRANSFER_TARBALL, **report)
        decision.events.append(Event("info", f"now running {info.version} (reload seen by "
                                             "its version, without a reload notice)"))
        return decision
    decision = Decision(state=State.WAIT_RELOAD, changes={
        "verifying": False, "state": State.WAIT_RELOAD.value, **report,
        "retry_after": ctx.now + timedelta(seconds=ctx.config.reload_wait)})
    decision.events.append(Event("info", f"check: still running {info.version or 'unknown'}; "
                                         "waiting for the reload"))
    return decision


def _checked_transfer(path_of: Callable[[Context], str], flag: str) -> Handler:
    def handler(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
        path = path_of(ctx)
        size = dir_file_size(response.exec_output, path)
        expected = ctx.file_size(path.rsplit("/", 1)[-1])
        if size is None:
            return _not_done(device, f"bootflash:{path} is not there")
        if expected is not None and size != expected:
            return _not_done(device, f"bootflash:{path} has {size} bytes, not {expected}")
        decision = _transition(device, STEPS[State(device.state)].next, **{flag: True})
        decision.events.append(Event("info", f"check: bootflash:{path} already there "
                                             f"({size} bytes); no new transfer"))
        return decision
    return handler


def _checked_eem(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    gs_state = app_hosting_state(response.exec_output)
    if gs_state is None:
        return _not_done(device, "no guestshell app yet")
    decision = _transition(device, State.CHECK_GUESTSHELL, guestshell_checks=0)
    decision.changes["retry_after"] = _after_check_delay(ctx)
    decision.events.append(Event("info", f"check: the applet ran (guestshell {gs_state})"))
    return decision


# --- what to send (work-request) -----------------------------------------------------------------


def skipped_steps(config: Config) -> list[tuple[int, str]]:
    """The steps these settings skip, ``[(step number, why)]``, in step order.

    One rule per setting, applied by the job builders of ``STEP_TABLE``: no GUESTSHELL_TARBALL skips
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
    error = device.last_error_message or "see server"
    if device.auto_retry_at is not None:
        wait = (device.auto_retry_at - ctx.now).total_seconds()
        return _backoff(state, min(cfg.idle_backoff, wait),
                        f"error ({device.error_kind}): {error}; automatic retry in {int(wait)} s")
    return _backoff(state, cfg.idle_backoff, f"error: {error}; waiting for an operator")


def _auto_retry(device: DeviceView, ctx: Context) -> tuple[DeviceView, list[Event], dict] | None:
    """ERROR from a transient or unknown cause, its ``auto_retry_at`` passed: resume the
    step that failed, as an operator's retry would, and count the round."""
    if device.state != State.ERROR or device.auto_retry_at is None or ctx.now < device.auto_retry_at:
        return None
    target = step_to_retry(device.state, device.failed_state)
    rounds = device.auto_retry_rounds + 1
    changes = {**STEP_RESET, **CLEAR_ERROR, "state": target.value, "auto_retry_rounds": rounds}
    event = Event("state", f"ERROR → {target.value} (automatic retry, round {rounds} of "
                           f"{ctx.config.error_retry_rounds}, after a {device.error_kind} error: "
                           f"{device.last_error_message})")
    view = {k: v for k, v in changes.items() if k in _VIEW_FIELDS}
    return _replace(device, **view), [event], changes


_VIEW_FIELDS = frozenset(f.name for f in fields(DeviceView))


def _is_duplicate(device: DeviceView, request: p.WorkRequest, ctx: Context) -> float | None:
    """Seconds left of DUPLICATE_WINDOW when this request repeats one answered with a job
    that is still pending (a copy, or the device retrying); None otherwise."""
    if not device.pending_correlator or device.pending_since is None:
        return None
    left = ctx.config.duplicate_window - (ctx.now - device.pending_since).total_seconds()
    return left if left > 0 else None


def _unknown_outcome(device: DeviceView, request: p.WorkRequest, ctx: Context,
                     state: State) -> Decision | tuple[DeviceView, list[Event]]:
    """The device asks for work while a job is pending: its outcome is unknown.

    Not a failed attempt. Counted in ``unknown_outcomes`` (ERROR of kind unknown past
    MAX_UNKNOWN_OUTCOMES); then the step's check finds out whether the job took effect
    (a Decision carrying the check job), or, for steps whose repeat is harmless, the
    step's job is sent again (the updated device and the events so far).
    """
    cfg = ctx.config
    count = device.unknown_outcomes + 1
    what = ("check of " if device.verifying else "") + \
        f"{device.pending_service} ({device.pending_correlator})"
    why = "the device reloaded" if request.reload_reason else "the device asked for work again"
    if count > cfg.max_unknown_outcomes:
        return _to_error(device, ctx, f"outcome of {what} unknown: no response {count} times in a "
                                      f"row (MAX_UNKNOWN_OUTCOMES {cfg.max_unknown_outcomes})",
                         UNKNOWN, unknown_outcomes=count)
    events = [Event("unknown", f"no response to {what}; {why}: outcome unknown "
                               f"({count} of {cfg.max_unknown_outcomes}), not counted as a failure")]
    step = STEPS[state]
    check = step.check(device, ctx) if step.check else None
    device = _replace(device, unknown_outcomes=count, pending_service=None,
                      pending_correlator=None, verifying=False)
    if isinstance(check, Job):
        changes = {"state": state.value, "pending_service": check.service, "verifying": True,
                   "pending_correlator": request.correlator, "pending_since": ctx.now,
                   "retry_after": None, "unknown_outcomes": count}
        decision = Decision(state=state, job=check, changes=changes)
        decision.events = events + [Event("job", f"check: {check.summary}", service=check.service,
                                           correlator=request.correlator)]
        return decision
    if isinstance(check, State):
        events.append(Event("state", f"{state.value} → {check.value} (it finds out)"))
        return _replace(device, state=check.value), events
    events.append(Event("info", f"sending {state.value} again (repeating it is harmless)"))
    return device, events


def _wait_reload(device: DeviceView, request: p.WorkRequest, ctx: Context,
                 ) -> Decision | tuple[DeviceView, list[Event]] | None:
    """WAIT_RELOAD: wait for the reload; None means go on to VERIFY_IMAGE now.

    The reload notice (or RELOAD_TIMEOUT, the last resort) goes to VERIFY_IMAGE. A
    work-request without the notice after RELOAD_WAIT gets a device-info: the running
    version says whether the device reloaded (docs/protocol.md §10).
    """
    cfg = ctx.config
    waited = (ctx.now - (device.reload_requested_at or ctx.now)).total_seconds()
    if request.reload_reason is not None or waited >= cfg.reload_timeout:
        return None
    left = _is_duplicate(device, request, ctx)
    if left is not None:
        return _backoff(State.WAIT_RELOAD, left, "a check is pending")
    if device.pending_correlator:
        return _unknown_outcome(device, request, ctx, State.WAIT_RELOAD)
    if waited < cfg.reload_wait or (device.retry_after and ctx.now < device.retry_after):
        return _backoff(State.WAIT_RELOAD, cfg.reload_wait,
                        "waiting for the device to reload into the new image")
    check = _device_info("all")
    decision = Decision(state=State.WAIT_RELOAD, job=check, changes={
        "state": State.WAIT_RELOAD.value, "pending_service": check.service, "verifying": True,
        "pending_correlator": request.correlator, "pending_since": ctx.now, "retry_after": None})
    decision.events.append(Event("job", f"check: {check.summary} (no reload notice after "
                                        f"{int(waited)} s)", service=check.service,
                                 correlator=request.correlator))
    return decision


def on_work_request(device: DeviceView, request: p.WorkRequest, ctx: Context) -> Decision:
    """Decide the reply to a WORK-REQUEST: a job for the current step, or a backoff.

    Total over all states (docs/protocol.md pitfall P3): parked, waiting and finished states
    answer with a backoff, never an empty body. A job still pending when the
    device asks again has an unknown outcome: within DUPLICATE_WINDOW the request is a
    duplicate (short backoff, nothing changes); after it the step's check finds out
    what happened (never a failed attempt).
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
    retried = _auto_retry(device, ctx)
    if retried is not None:
        device, more, changes = retried
        events += more
        adopted = {**adopted, **changes}
        state = State(device.state)
    decision = _clear_stale_error(device, _decide_request(device, request, ctx, state))
    decision.events[:0] = events
    return _finish(decision, adopted)


def _adopt_operator_edit(device: DeviceView) -> tuple[DeviceView, list[Event], dict]:
    """Detect a state changed outside the workflow (SQL, UI) and start that step afresh.

    ``workflow_state`` is the state the workflow itself last wrote; when the
    row's ``state`` differs, an operator moved the device: the pending job,
    attempts, unknown outcomes, retry timer and guestshell checks belong to the old
    step and are dropped, and so is any automatic retry, so the next work-request
    obeys the edit.
    """
    if not device.workflow_state or device.workflow_state == device.state:
        return device, [], {}
    # The operator has taken over: no automatic retry of an old ERROR either.
    reset = {**STEP_RESET, "error_kind": None, "auto_retry_at": None, "auto_retry_rounds": 0}
    event = Event("state", f"{device.workflow_state} → {device.state} (changed outside the "
                           "workflow; starting that step afresh)")
    return _replace(device, **reset), [event], reset


#: A last error whose step has since succeeded: stale, cleared from the row.
STALE_ERROR = {"last_error_code": None, "last_error_message": None}


def _clear_stale_error(device: DeviceView, decision: Decision) -> Decision:
    """A device that moved on from the state its last error was recorded in (the failed step
    succeeded: the step after it was reached) or that is FINISHED keeps no last error.

    Untouched: a decision that records an error itself (``last_error_message`` in its
    changes, e.g. a retry in another state) and a move into a parked state (ERROR,
    BOOTFLASH_NO_SPACE), where the error is the reason. Returns ``decision``.
    """
    if not (device.last_error_message or device.last_error_code) or decision.state in PARKED:
        return decision
    if "last_error_message" in decision.changes:
        return decision
    if decision.state.value != device.state or decision.state == State.FINISHED:
        decision.changes.update(STALE_ERROR)
    return decision


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
        if isinstance(waiting, Decision):
            return waiting
        if waiting is None:
            prefix.append(Event("state", "WAIT_RELOAD → VERIFY_IMAGE"))
            device = _replace(device, state=State.VERIFY_IMAGE.value, pending_service=None,
                              pending_correlator=None, verifying=False, retry_after=None)
        else:
            device, prefix = waiting
        state = State(device.state)
    elif device.pending_correlator:
        left = _is_duplicate(device, request, ctx)
        if left is not None:
            return _backoff(state, left, f"{state.value}: a job is pending")
        outcome = _unknown_outcome(device, request, ctx, state)
        if isinstance(outcome, Decision):
            return outcome
        device, prefix = outcome
        if device.state != state.value:
            state = State(device.state)
    if device.retry_after and ctx.now < device.retry_after:
        wait = max(1, int((device.retry_after - ctx.now).total_seconds()))
        why = "retry after an error" if device.attempts else "waiting before it starts"  # e.g. guestshell checks
        decision = _backoff(state, wait, f"{state.value} {why}",
                            pending_service=None, pending_correlator=None,
                            state=state.value, attempts=device.attempts,
                            unknown_outcomes=device.unknown_outcomes, verifying=False)
        decision.events = prefix
        return decision
    return _send_job(device, request, ctx, state, prefix)


def _send_job(device: DeviceView, request: p.WorkRequest, ctx: Context, state: State,
              prefix: list[Event]) -> Decision:
    """The job of the device's step; a step that is not configured is skipped."""
    for _ in range(len(State)):
        builder = STEPS[state].job
        outcome = builder(device, ctx) if builder else State.FINISHED
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
                   "retry_after": None, "attempts": device.attempts,
                   "unknown_outcomes": device.unknown_outcomes, "verifying": False}
        decision = Decision(state=state, job=outcome, changes=changes)
        decision.events = prefix + [Event("job", outcome.summary, service=outcome.service,
                                          correlator=request.correlator)]
        return decision
    raise RuntimeError("skip loop did not end")  # pragma: no cover


# --- what a result means (work-response) -------------------------------------------------------


def on_work_response(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    """Decide what a WORK-RESPONSE changes. The HTTP reply is always a bye.

    A response whose service or correlator does not match the pending job
    changes nothing (stale, replayed or a copy; docs/protocol.md pitfall P8). A fault (no
    correlator) is attributed to the pending job (P4). ``success="0"`` is recorded with
    its code and message and the step is retried or failed (P7), by the kind of the code
    (``ERROR_CODES``). The result of a check (``verifying``) goes to the step's check
    handler: the step is done, or its job is sent again.
    """
    device, events, adopted = _adopt_operator_edit(device)
    decision = _clear_stale_error(device, _decide_response(device, response, ctx))
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
        if device.verifying:
            decision = _not_done(device, f"the check got a fault ({error.message})",
                                 pending_service=None, pending_correlator=None)
        else:
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
    step = STEPS[state]
    if device.verifying:
        if not response.success or step.checked is None:
            error = response.error
            return _not_done(device, f"the check failed ({error.code if error else 'no errorInfo'})")
        return step.checked(device, response, ctx)
    if not response.success:
        return step.failed(device, response, ctx)
    if step.done is None:
        return _ignored(device, response, f"no job expected in {state.value}")
    return step.done(device, response, ctx)


def _failure_message(response: p.WorkResponse) -> tuple[p.ErrorInfo, str]:
    error = response.error or p.ErrorInfo(message="success=0 without errorInfo")
    message = f"{response.service} failed: {error.message or error.code}"
    if response.service_log:
        message += f" | {response.service_log[:500]}"
    return error, message


def _on_failure(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    """A device-reported failure: retried or ERROR by the kind of its code (ERROR_CODES)."""
    error, message = _failure_message(response)
    return _fail(device, ctx, message, code=error.code, hard=code_kind(error.number) == PERMANENT)


def _install_failed(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
    """image-install failed: 1817 means already installed; an md5 mismatch (1816) is
    retried (one damaged download), the same mismatch on every try names the catalogue."""
    error, message = _failure_message(response)
    if error.number == IMAGE_ALREADY_INSTALLED:
        decision = _transition(device, State.VERIFY_IMAGE)
        decision.events.append(Event("info", f"{error.code}: image already installed; "
                                             "verifying the running version"))
        return decision
    kind = code_kind(error.number)
    if kind != MISMATCH:
        return _fail(device, ctx, message, code=error.code, hard=kind == PERMANENT)
    image = ctx.config.image_for(device.pid)
    entry = (f"{image.file} (IMAGES entry pid {image.pid!r}, md5 {image.md5 or 'computed'})"
             if image else device.target_image)
    return _fail(device, ctx, message, code=error.code, exhausted=PERMANENT,
                 exhausted_why=f"the same md5 mismatch on every download: check the catalogue "
                               f"entry {entry} and the file in images/")


# --- success handlers ------------------------------------------------------------------------------


def _advance(**changes) -> Handler:
    """Success goes to the step's ``next`` state (cli-exec output must show no IOS error)."""
    def handler(device: DeviceView, response: p.WorkResponse, ctx: Context) -> Decision:
        problem = exec_error(response.exec_output) if response.service == "cli-exec" else None
        if problem:
            return _fail(device, ctx, f"{response.service} output: {problem}")
        return _transition(device, STEPS[State(device.state)].next, **changes)
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


# --- the table: the 13 steps in order ---------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One workflow state: everything about it in one place.

    ``number`` is the step (1-13) shown to operators (0 for ERROR). ``job`` builds what
    to send (a Job; a State to skip to when the step is not configured; a Decision when
    the step cannot be done), None for states that send no job of their own. ``done``
    handles a successful result and ``failed`` a device-reported failure. ``next`` is
    where success normally leads. ``check`` finds out, after an unknown outcome, whether
    the last job took effect: a Job whose result goes to ``checked`` (the step is done,
    or its job is sent again), a State that finds out itself, or None when sending the
    job again is cheap and harmless (read-only jobs, ``write memory``).
    """

    state: State
    number: int
    job: JobBuilder | None
    done: Handler | None
    next: State | None
    check: JobBuilder | None = None
    checked: Handler | None = None
    failed: Handler = _on_failure


STEP_TABLE = (
    Step(State.CONFIG_REGISTER, 1, _job_config_register, _config_register_done,
         State.SAVE_CONFIG_REGISTER,
         check=_job_device_info, checked=_checked_config_register),
    Step(State.SAVE_CONFIG_REGISTER, 2, _job_write_memory, _advance(), State.CHECK_IMAGE),
    Step(State.CHECK_IMAGE, 3, _job_device_info, _check_image_done, State.INSTALL_IMAGE),
    Step(State.INSTALL_IMAGE, 4, _job_install_image, _install_done, State.WAIT_RELOAD,
         check=_check_image, checked=_checked_image, failed=_install_failed),
    Step(State.WAIT_RELOAD, 4, None, None, State.VERIFY_IMAGE,
         check=_job_device_info, checked=_checked_reload),
    Step(State.VERIFY_IMAGE, 4, _job_device_info, _verify_image_done, State.TRANSFER_TARBALL),
    Step(State.TRANSFER_TARBALL, 5, _job_tarball, _advance(tarball_transferred=True),
         State.TRANSFER_SCRIPT,
         check=_check_tarball, checked=_checked_transfer(_tarball_path, "tarball_transferred")),
    Step(State.TRANSFER_SCRIPT, 6, _job_script, _advance(script_transferred=True),
         State.APPLY_DAY0_CONFIG,
         check=_check_script, checked=_checked_transfer(_script_path, "script_transferred")),
    # A day-0 config is kilobytes and merging the same lines again gives the same
    # running-config: sending config-upgrade again is the cheapest conclusive check.
    Step(State.APPLY_DAY0_CONFIG, 7, _job_day0, _advance(configured=True), State.SAVE_CONFIG),
    Step(State.SAVE_CONFIG, 8, _job_write_memory, _advance(), State.CHECK_BOOTFLASH),
    Step(State.CHECK_BOOTFLASH, 9, _job_filesystem, _bootflash_done, State.RUN_EVENT_MANAGER),
    Step(State.BOOTFLASH_NO_SPACE, 9, None, None, State.CHECK_BOOTFLASH),
    Step(State.RUN_EVENT_MANAGER, 10, _job_eem, _eem_done, State.CHECK_GUESTSHELL,
         check=_job_show_guestshell, checked=_checked_eem),
    Step(State.CHECK_GUESTSHELL, 11, _job_show_guestshell, _guestshell_check_done,
         State.RUN_SCRIPT),
    Step(State.INSTALL_GUESTSHELL, 11, _job_install_guestshell, _guestshell_action_done,
         State.CHECK_GUESTSHELL, check=_to_state(State.CHECK_GUESTSHELL)),
    Step(State.ENABLE_GUESTSHELL, 11, _job_enable_guestshell, _guestshell_action_done,
         State.CHECK_GUESTSHELL, check=_to_state(State.CHECK_GUESTSHELL)),
    # The script is the operator's: it is run again after an unknown outcome (write it so
    # that a second run is harmless).
    Step(State.RUN_SCRIPT, 12, _job_run_script, _script_done, State.FINISHED),
    Step(State.FINISHED, 13, None, None, None),
    Step(State.ERROR, 0, None, None, None),
)

#: The workflow table, by state (``STEP_TABLE`` gives the order).
STEPS: dict[State, Step] = {step.state: step for step in STEP_TABLE}
#: Step number (1-13) of each state, for "step n of 13" (0 for ERROR).
STEP_NUMBER: dict[State, int] = {step.state: step.number for step in STEP_TABLE}
