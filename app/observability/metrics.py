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
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

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


class DeviceStateCollector(Collector):
    """Counts ``device_state`` rows per state at scrape time (one GROUP BY query).

    Every workflow state appears (0 when empty) so that dashboards see stable
    series; a state written by hand that the workflow does not know appears too.
    """

    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.sessions() as session:
            rows = session.execute(select(DeviceState.state, func.count())
                                   .group_by(DeviceState.state)).all()
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


def scrape(sessions: sessionmaker[Session]) -> bytes:
    """The exposition text: the workers' summed metrics plus devices per state.

    Without PROMETHEUS_MULTIPROC_DIR (tests with the Flask client, a single
    process) the process's own default registry is used.
    """
    registry = CollectorRegistry()
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in (REQUESTS, ERRORS, REJECTED, FILE_BYTES, PROVISIONING, DB_STATEMENTS):
            registry.register(collector)
    registry.register(DeviceStateCollector(sessions))
    return generate_latest(registry)


def worker_exit(pid: int) -> None:
    """gunicorn ``child_exit`` hook: drop the dead worker's live-gauge files."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus scrape endpoint (text format 0.0.4)."""
    return Response(scrape(get_sessions()), status=200, mimetype=None,
                    headers={"Content-Type": CONTENT_TYPE_LATEST})
