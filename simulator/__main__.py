"""Run simulated PnP devices against a server: ``python3 -m simulator --url http://127.0.0.1:8080 -n 10``.

For people watching a run: one line per device whenever what it is doing
changes (the job the server sent, a reload, a failure it reports, a backoff),
devices the server parks in ERROR stop polling, and a summary at the end gives
each device's final state with the reason of every failure. The timeout is in
minutes and by default fits the fleet and the time scale.

Fault options are generated from the fields of ``simulator.device.Faults``
(``--fault-<field>``), so a new kind of fault appears here by itself.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import threading
import time

import click
import requests

from simulator.device import Faults, SimulatedDevice

FAULT_PREFIX = "fault-"


def default_timeout_minutes(devices: int, time_scale: float) -> int:
    """Minutes a fleet of ``devices`` needs at ``time_scale``, with room for retries.

    At time scale 1 a device waits out the server's real backoffs (a reload
    wait of 2 minutes, guestshell checks, retries of 30-300 s): about 12
    minutes; the server handles devices in parallel, so a large fleet only adds
    a little (one minute per 50 devices).
    """
    return math.ceil(2 + 10 * max(time_scale, 0.0) + (devices - 1) // 50)


def _field_help() -> dict[str, str]:
    """``{field: description}`` from the ``Faults`` docstring (````name``: text.`` sentences)."""
    doc = " ".join((Faults.__doc__ or "").split())
    return {m.group(1): m.group(2).strip() for m in
            re.finditer(r"``(\w+)``:\s*(.*?)(?=\s*``\w+``:|$)", doc)}


def _default_of(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def fault_options(command):
    """Add one ``--fault-<field>`` option per field of ``Faults`` to a click command.

    The option's kind follows the field's default: bool → flag, int/float →
    number, dict → repeatable ``KEY=N``, set/list → repeatable value, str → text.
    """
    helps = _field_help()
    for f in reversed(dataclasses.fields(Faults)):
        default = _default_of(f)
        name = "--" + FAULT_PREFIX + f.name.replace("_", "-")
        dest = FAULT_PREFIX.replace("-", "_") + f.name
        text = helps.get(f.name, f"inject {f.name}")
        if isinstance(default, bool):
            option = click.option(name, dest, is_flag=True, default=default, help=text)
        elif isinstance(default, int | float):
            option = click.option(name, dest, type=type(default), default=default, show_default=True,
                                  help=text)
        elif isinstance(default, dict):
            option = click.option(name, dest, multiple=True, metavar="KEY=N",
                                  help=f"{text} (repeatable, e.g. cli-exec=1)")
        elif isinstance(default, set | list | tuple):
            option = click.option(name, dest, multiple=True, help=f"{text} (repeatable)")
        else:
            option = click.option(name, dest, default=default, help=text)
        command = option(command)
    return command


def faults_from(options: dict) -> Faults | None:
    """The ``Faults`` the ``--fault-*`` values ask for, or None when none was given."""
    values, given = {}, False
    for f in dataclasses.fields(Faults):
        raw = options.get(FAULT_PREFIX.replace("-", "_") + f.name)
        default = _default_of(f)
        if isinstance(default, dict):
            value = {}
            for item in raw or ():
                key, _, count = item.partition("=")
                try:
                    value[key.strip()] = int(count) if count else 1
                except ValueError as exc:
                    raise click.BadParameter(f"{item!r}: expected KEY=N", param_hint=f.name) from exc
        elif isinstance(default, set | list | tuple):
            value = type(default)(raw or ())
        else:
            value = default if raw is None else raw
        given = given or value != default
        values[f.name] = value
    return Faults(**values) if given else None


def describe(request) -> str:
    """A short description of a server job: service and its object (command, file)."""
    tag = request.tag
    service = tag[1:].split("}")[0].rsplit(":", 1)[-1] if tag.startswith("{") else tag

    def first(name: str) -> str:
        node = next((e for e in request.iter() if e.tag.rsplit("}", 1)[-1] == name and e.text), None)
        return node.text.strip() if node is not None else ""

    if service in ("cli-exec", "cli-config"):
        return f"{service} {first('cmd')}"
    if service in ("file-transfer", "image-install", "config-upgrade"):
        return f"{service} {first('location').rsplit('/', 1)[-1]}"
    if service == "device-info":
        return f"device-info {request.get('type') or first('type') or ''}".strip()
    return service


def _failure(answer: str) -> str:
    """What went wrong in a response the device sends, or ""."""
    if "urn:cisco:pnp:fault" in answer:
        m = re.search(r"<faultstring>(.*?)</faultstring>", answer, re.S)
        return f"fault: {m.group(1) if m else 'fault'}"
    if 'success="0"' in answer:
        code = re.search(r"<errorCode>(.*?)</errorCode>", answer, re.S)
        message = re.search(r"<errorMessage>(.*?)</errorMessage>", answer, re.S)
        return f"failed {code.group(1) if code else ''}: {message.group(1) if message else ''}".strip()
    m = re.search(r"^\s*(%\s*(?:Error|Invalid input)[^\n<]*)", answer, re.M)
    return f"output: {m.group(1).strip()}" if m else ""


class WatchedDevice(SimulatedDevice):
    """A SimulatedDevice that reports each change of what it is doing to ``on_phase(device, text)``."""

    def __init__(self, *args, on_phase, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.on_phase, self.phase, self.failures = on_phase, "booting", []
        self.started = time.monotonic()
        self.ended: float | None = None

    def _set(self, phase: str) -> None:
        if phase != self.phase:
            self.phase = phase
            self.on_phase(self, phase)

    def execute(self, request):
        answer, reload_after = super().execute(request)
        what = describe(request)
        if what == "backoff":
            if self.finished:
                self._set("FINISHED")
            elif self.parked:
                self._set(f"ERROR: {self.last_backoff_reason}")
            else:
                self._set(f"waiting: {self.last_backoff_reason}")
            return answer, reload_after
        failure = _failure(answer)
        if failure:
            self.failures.append(f"{what}: {failure}")
            self._set(f"{what} -> {failure}")
        else:
            self._set(what)
        return answer, reload_after

    def reload(self) -> None:
        self._set("reloading")
        super().reload()


def wait_for_server(url: str, seconds: float) -> bool:
    """Poll ``GET <url>/pnp/HELLO`` until the server answers (True) or ``seconds`` pass."""
    session = requests.Session()
    session.trust_env = False
    deadline = time.monotonic() + seconds
    while True:
        try:
            session.get(f"{url.rstrip('/')}/pnp/HELLO", timeout=3)
            return True
        except requests.RequestException:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)


def final_state(dev: WatchedDevice, met: bool) -> tuple[str, str]:
    """``(FINISHED | ERROR | TIMEOUT, reason)`` of a device at the end of the run."""
    if met and dev.finished:
        return "FINISHED", ""
    if dev.parked:
        return "ERROR", dev.last_backoff_reason
    reason = f"still at: {dev.phase}"
    if dev.failures:
        reason += f"; last failure: {dev.failures[-1]}"
    return "TIMEOUT", reason


@click.command()
@click.option("--url", required=True, help="PnP server base URL, e.g. http://127.0.0.1:8080")
@click.option("-n", "--devices", default=1, show_default=True, help="number of devices")
@click.option("--pid", default="C1131-8PWB", show_default=True)
@click.option("--version", "version", default="17.9.4a", show_default=True, help="running version")
@click.option("--serial-prefix", default="SIM", show_default=True)
@click.option("--timeout", type=float, default=None,
              help="minutes to wait for every device [default: fits the fleet, printed at start]")
@click.option("--time-scale", default=1.0, show_default=True, help="multiply server backoffs by this")
@click.option("--wait", "wait_server", default=30.0, show_default=True,
              help="seconds to wait for the server to answer before starting")
@click.option("--faulty", type=int, default=None,
              help="how many devices get the --fault-* faults [default: all]")
@click.option("--reload-seconds", default=0.5, show_default=True, help="how long a reload takes")
@click.option("--epilogue", default="", help="a line to print after the summary (run.py demo uses it)")
@fault_options
def main(url, devices, pid, version, serial_prefix, timeout, time_scale, wait_server, faulty, reload_seconds,
         epilogue, **fault_values):
    """Boot N factory-fresh devices and poll until each finishes, is parked in ERROR, or the timeout."""
    faults = faults_from(fault_values)
    minutes = timeout if timeout is not None else default_timeout_minutes(devices, time_scale)
    lock = threading.Lock()
    start = time.monotonic()

    def on_phase(dev: WatchedDevice, phase: str) -> None:
        with lock:
            click.echo(f"{time.monotonic() - start:7.1f}s {dev.serial:<12} {phase}")

    if not wait_for_server(url, wait_server):
        raise click.ClickException(f"no answer from {url}/pnp/HELLO within {wait_server:.0f} s")
    sims = []
    for i in range(devices):
        own = copy.deepcopy(faults) if faults and (faulty is None or i < faulty) else None
        sims.append(WatchedDevice(url, f"{serial_prefix}{i:05d}", pid=pid, version=version, faults=own,
                                  time_scale=time_scale, max_sleep=max(1.0, 60 * time_scale),
                                  reload_seconds=reload_seconds, on_phase=on_phase))
    click.echo(f"{devices} device(s) {pid} {version} -> {url}; timeout {minutes:g} min"
               + (f"; faults on {faulty if faulty is not None else devices}: {faults}" if faults else ""))
    results: dict[str, bool] = {}

    def drive(sim: WatchedDevice) -> None:
        results[sim.serial] = sim.run(timeout=minutes * 60, until=lambda d: d.finished or d.parked)
        sim.ended = time.monotonic()

    threads = [threading.Thread(target=drive, args=(s,), daemon=True) for s in sims]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    click.echo(f"\nSummary after {elapsed:.1f} s:")
    done = 0
    for sim in sims:
        state, reason = final_state(sim, results.get(sim.serial, False))
        done += state == "FINISHED"
        took = f"{(sim.ended or time.monotonic()) - sim.started:6.1f}s"
        click.echo(f"  {sim.serial:<12} {sim.version:<10} {state:<9} {took}  {reason}".rstrip())
        for failure in sim.failures if state != "FINISHED" else ():
            click.echo(f"  {'':<12} {'':<10} reported  {failure}")
    click.echo(f"{done}/{devices} finished in {elapsed:.1f} s")
    if epilogue:
        click.echo(epilogue)
    raise SystemExit(0 if done == devices else 1)


if __name__ == "__main__":
    main()
