"""Prometheus metrics: ``GET /metrics`` in the text exposition format.

Works under several gunicorn workers with prometheus-client's multiprocess
mode: each worker writes its counters and histograms to files in
``PROMETHEUS_MULTIPROC_DIR`` (run.py sets it, wipes it at start and marks
dead workers in gunicorn's ``child_exit`` hook), and a scrape sums them. Only
Counter and Histogram are used (no Info, Enum or set_function, which the
multiprocess mode does not support). Devices per state are not kept in any
process: a custom collector counts them in the database at scrape time.

Metrics:

* ``pnp_devices{state}``: devices per workflow state (gauge, from ``device_state``).
* ``pnp_provisioning_duration_seconds``: first contact → FINISHED, observed
  once when a device reaches FINISHED (histogram, seconds).
* ``pnp_requests_total{message,service}``: PnP messages handled; ``message`` is
  ``work-request`` (``service`` = the job sent, or ``backoff``) or
  ``work-response`` (``service`` = the service the device answers).
* ``pnp_errors_total{service,code}``: failed work-responses (``code`` is the
  errorInfo code such as ``PnP Service Error 1702``; ``fault`` for faults).
  Label values come from fixed sets (``KNOWN_SERVICES``, the documented code
  ranges of ``KNOWN_ERROR_CODES``), anything else a device sends is ``other``:
  bogus responses cannot grow the number of series.
* ``pnp_rejected_total{message}``: malformed PnP messages answered 400.
* ``pnp_db_statements_total``: SQL statements plus COMMITs, counted only when
  ``PNP_COUNT_STATEMENTS=1`` (benchmarks).
* ``pnp_file_bytes_served_total{area,via}``: bytes of /images, /configs and
  /files responses as actually sent (counted when the response closes, so a
  download cut short counts what left; ``via`` is ``direct`` or
  ``x-accel-redirect``: then nginx sends the bytes and the counter holds the
  file size handed over).
* ``pnp_http_request_duration_seconds{group,status}``: request → response
  headers, per route group (blueprint) and status class.
* ``pnp_workflow_failures_total{kind}``: devices entering ERROR by kind
  (FAILURE_KINDS), counted by the operator layer's change hook (app/ops/notify.py).
* ``pnp_database_up``, ``pnp_build_info{version,python}``, ``process_*`` of the
  whole server (master + workers, from /proc), ``python_info``; the operator
  layer adds ``pnp_devices_lifecycle{lifecycle}`` and ``pnp_devices_stalled``.
"""

from __future__ import annotations

import os
import platform
import time
import tomllib
from collections.abc import Iterator

from flask import Blueprint, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.config import PROJECT_ROOT
from app.pnp.workflow import State
from app.storage.db import get_sessions
from app.storage.models import DeviceState

#: PnP services a label may name (docs/protocol.md §7.2); anything else a device writes is ``other``.
KNOWN_SERVICES = frozenset({
    "backoff", "bye", "capability", "certificate-install", "cli-config", "cli-exec", "config-upgrade",
    "device-auth", "device-info", "fault", "file-transfer", "image-install", "licensing",
    "redirection", "reload", "script", "snmp", "snooping", "topology", "work-info"})
#: Documented ``PnP Service Error NNNN`` ranges (docs/protocol.md §7.2): a fixed set of about 300 codes.
_CODE_RANGES = ((1200, 1202), (1300, 1309), (1400, 1424), (1600, 1618), (1700, 1702), (1800, 1832),
                (1900, 1900), (2400, 2406), (2500, 2522), (2600, 2600), (2700, 2700), (3000, 3001),
                (3100, 3136), (3300, 3337), (3400, 3410))
KNOWN_ERROR_CODES = frozenset(
    {f"PnP Service Error {n}" for low, high in _CODE_RANGES for n in range(low, high + 1)} | {"fault", "none"})
OTHER = "other"


def service_label(service: str | None) -> str:
    """``service`` when it is a known PnP service, else ``other`` (label values from a fixed set)."""
    return service if service in KNOWN_SERVICES else OTHER


def error_code_label(code: str | None) -> str:
    """A documented ``PnP Service Error NNNN`` (spaces normalised), ``fault`` or ``none`` (a failure
    without a code), else ``other``."""
    text = " ".join((code or "").split())[:64]
    return text if text in KNOWN_ERROR_CODES else OTHER


#: Provisioning takes minutes to hours (an image download and a reload).
DURATION_BUCKETS = (30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200, 14400, 43200,
                    86400, float("inf"))

REQUESTS = Counter("pnp_requests", "PnP messages handled, by message and service",
                   ["message", "service"])
ERRORS = Counter("pnp_errors", "Failed PnP work-responses, by service and error code",
                 ["service", "code"])
REJECTED = Counter("pnp_rejected", "Malformed PnP messages answered 400", ["message"])
FILE_BYTES = Counter("pnp_file_bytes_served", "Bytes of file responses (images, configs, files)",
                     ["area", "via"])
DB_STATEMENTS = Counter("pnp_db_statements", "SQL statements and commits sent to the database "
                        "(only with PNP_COUNT_STATEMENTS=1)")
PROVISIONING = Histogram("pnp_provisioning_duration_seconds",
                         "Seconds from a device's first contact until FINISHED",
                         buckets=DURATION_BUCKETS)
#: HTTP answers take milliseconds; an image download's headers too (the body streams after).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf"))
#: route groups: one per blueprint, "other" for anything else (unknown URLs): a bounded label
ROUTE_GROUPS = ("pnp", "files", "ztp", "console", "api", "health", "metrics", "static", "other")
HTTP_LATENCY = Histogram("pnp_http_request_duration_seconds",
                         "Seconds from a request to its response headers, by route group and status class",
                         ["group", "status"], buckets=LATENCY_BUCKETS)
#: why a device's workflow failed (a device entered ERROR): a bounded label
FAILURE_KINDS = ("device_error", "script_failure", "config_rejected", "reload_not_taken",
                 "template_error", "unknown")
WORKFLOW_FAILURES = Counter("pnp_workflow_failures", "Devices that entered ERROR, by kind of failure",
                            ["kind"])


class DeviceStateCollector(Collector):
    """Counts ``device_state`` rows per state at scrape time (one GROUP BY query), and says
    whether the database answered (``pnp_database_up`` 1 or 0; without it no device gauges).

    Every workflow state appears (0 when empty) so that dashboards see stable
    series; a state written by hand that the workflow does not know appears too.
    """

    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("pnp_database_up", "1 when the database answered this scrape, else 0")
        try:
            with self.sessions() as session:
                rows = session.execute(select(DeviceState.state, func.count())
                                       .group_by(DeviceState.state)).all()
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        counts = {state.value: 0 for state in State}
        counts.update({state: n for state, n in rows})
        family = GaugeMetricFamily("pnp_devices", "Devices per workflow state", labels=["state"])
        for state, n in sorted(counts.items()):
            family.add_metric([state], n)
        yield family


def count_statements(engine: Engine) -> None:
    """Count every SQL statement and COMMIT of ``engine`` in ``pnp_db_statements_total``.

    ``create_app`` calls this when ``PNP_COUNT_STATEMENTS=1`` is in the
    environment (bench/run measures statements per PnP message with it).
    """
    @event.listens_for(engine, "before_cursor_execute")
    def _count(*_args):
        DB_STATEMENTS.inc()

    @event.listens_for(engine, "commit")
    def _count_commit(*_args):
        DB_STATEMENTS.inc()


def multiprocess_dir() -> str | None:
    """The multiprocess directory when set (gunicorn via run.py), else None."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _build_version() -> str:
    try:
        with open(PROJECT_ROOT / "pyproject.toml", "rb") as fh:
            return str(tomllib.load(fh)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


BUILD_VERSION = _build_version()


class BuildInfoCollector(Collector):
    """``pnp_build_info{version, python}`` = 1 (the project version from pyproject.toml)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("pnp_build_info", "Version of this server (always 1)",
                                   labels=["version", "python"])
        family.add_metric([BUILD_VERSION, platform.python_version()], 1)
        yield family


def _proc_stat(pid: int) -> dict | None:
    """CPU seconds, resident and virtual bytes, open fds, start time of one process (/proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().split(b")")[-1].split()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat", "rb") as fh:
        boot = next(float(line.split()[1]) for line in fh if line.startswith(b"btime"))
    return {"cpu": (float(fields[11]) + float(fields[12])) / ticks,
            "rss": int(fields[21]) * os.sysconf("SC_PAGE_SIZE"), "vsize": int(fields[20]),
            "fds": fds, "start": boot + float(fields[19]) / ticks}


def server_pids() -> list[int]:
    """The server's processes: under gunicorn (multiprocess mode) the master and each
    of its workers, else this process alone."""
    if not multiprocess_dir() or not os.path.isdir("/proc"):
        return [os.getpid()]
    master = os.getppid()
    try:
        with open(f"/proc/{master}/task/{master}/children") as fh:
            children = [int(x) for x in fh.read().split()]
    except OSError:
        return [os.getpid()]
    return [master, *children] if os.getpid() in children else [os.getpid()]


class ServerProcessCollector(Collector):
    """``process_*`` for the whole server, read from /proc at scrape time (so right whichever
    worker answers): CPU seconds, resident and virtual memory and open fds summed over the
    master and its workers, the master's start time, and ``pnp_server_processes``; and
    ``python_info`` (prometheus-client's PlatformCollector, the same in every process)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = [s for s in map(_proc_stat, server_pids()) if s is not None]
        if not stats:
            return
        yield CounterMetricFamily("process_cpu_seconds", "User and system CPU seconds of the server's "
                                  "processes", value=sum(s["cpu"] for s in stats))
        yield GaugeMetricFamily("process_resident_memory_bytes", "Resident memory of the server's processes",
                                value=sum(s["rss"] for s in stats))
        yield GaugeMetricFamily("process_virtual_memory_bytes", "Virtual memory of the server's processes",
                                value=sum(s["vsize"] for s in stats))
        yield GaugeMetricFamily("process_open_fds", "Open file descriptors of the server's processes",
                                value=sum(s["fds"] for s in stats))
        yield GaugeMetricFamily("process_start_time_seconds", "Start of the server (its oldest process), "
                                "seconds since the epoch", value=min(s["start"] for s in stats))
        yield GaugeMetricFamily("pnp_server_processes", "Processes of this server (master and workers)",
                                value=len(stats))
        yield from PlatformCollector(registry=None).collect()


def scrape(sessions: sessionmaker[Session], extra: tuple = ()) -> bytes:
    """The exposition text: the workers' summed metrics, devices per state, build info,
    the server's process metrics and any ``extra`` collectors (the operator layer's fleet
    gauges).

    Without PROMETHEUS_MULTIPROC_DIR (tests with the Flask client, a single
    process) the process's own default registry is used.
    """
    registry = CollectorRegistry()
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in (REQUESTS, ERRORS, REJECTED, FILE_BYTES, PROVISIONING, DB_STATEMENTS,
                          HTTP_LATENCY, WORKFLOW_FAILURES):
            registry.register(collector)
    for collector in (DeviceStateCollector(sessions), BuildInfoCollector(), ServerProcessCollector(), *extra):
        registry.register(collector)
    return generate_latest(registry)


def count_failure(kind: str) -> None:
    """Count one workflow failure of ``kind`` (one of FAILURE_KINDS, else "unknown")."""
    WORKFLOW_FAILURES.labels(kind if kind in FAILURE_KINDS else "unknown").inc()


def init_http_metrics(app) -> None:
    """Observe ``pnp_http_request_duration_seconds`` for every request of ``app``, and
    create the failure series at 0 so that ``rate()`` alerts see them from the start."""
    for kind in FAILURE_KINDS:
        WORKFLOW_FAILURES.labels(kind)

    @app.before_request
    def _start() -> None:
        g.pnp_started = time.perf_counter()

    @app.after_request
    def _observe(response):
        started = g.pop("pnp_started", None)
        if started is not None:
            group = request.blueprint if request.blueprint in ROUTE_GROUPS else (
                "static" if request.endpoint == "static" else "other")
            HTTP_LATENCY.labels(group, f"{response.status_code // 100}xx").observe(
                time.perf_counter() - started)
        return response


def worker_exit(pid: int) -> None:
    """gunicorn ``child_exit`` hook: drop the dead worker's live-gauge files."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus scrape endpoint (the text format, ``CONTENT_TYPE_LATEST`` of prometheus-client)."""
    extra = tuple(current_app.extensions.get("pnp_collectors", ()))
    return Response(scrape(get_sessions(), extra), status=200, mimetype=None,
                    headers={"Content-Type": CONTENT_TYPE_LATEST})
