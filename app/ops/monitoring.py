"""The operator layer's part of /metrics: devices per lifecycle, stalled devices, and the
kind of each workflow failure.

* ``FleetCollector``: ``pnp_devices_lifecycle{lifecycle}`` and ``pnp_devices_stalled``,
  counted in the database at scrape time by the same rules as the dashboard
  (app/ops/queries.py ``counts_by_state``), so both always agree.
* ``failure_kind``: which FAILURE_KINDS label a device that entered ERROR gets;
  app/ops/notify.py counts it in ``pnp_workflow_failures_total`` once the change
  is committed.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.ops.lifecycle import Lifecycle
from app.storage.db import utcnow

#: failed step → kind, when the message tells nothing more specific
_STEP_KINDS = {"RUN_SCRIPT": "script_failure", "CHECK_GUESTSHELL": "script_failure",
               "INSTALL_GUESTSHELL": "script_failure", "ENABLE_GUESTSHELL": "script_failure",
               "WAIT_RELOAD": "reload_not_taken", "VERIFY_IMAGE": "reload_not_taken"}


def failure_kind(state: str | None, failed_state: str | None, code: str | None, message: str | None,
                 error_kind: str | None = None) -> str:
    """The kind of a workflow failure (a FAILURE_KINDS value of app/observability/metrics.py).

    ``error_kind`` (a column the workflow may keep) wins when it is a known kind;
    otherwise: a day-0 template that cannot be rendered → template_error; rejected
    config lines → config_rejected; the guestshell/script steps → script_failure;
    a reload that did not bring up the target image → reload_not_taken; any other
    error the device reported with an errorInfo code → device_error; else unknown.
    """
    from app.observability.metrics import FAILURE_KINDS

    if error_kind in FAILURE_KINDS:
        return error_kind
    text = (message or "").lower()
    if "day-0 config" in text or "template" in text:
        return "template_error"
    if "rejected" in text and "config" in text:
        return "config_rejected"
    if text.startswith(("script", "guestshell", "event manager")) or failed_state in _STEP_KINDS and \
            _STEP_KINDS[failed_state] == "script_failure":
        return "script_failure"
    if failed_state in _STEP_KINDS or text.startswith("running version"):
        return "reload_not_taken"
    if code:
        return "device_error"
    return "unknown"


class FleetCollector(Collector):
    """Devices per lifecycle and stalled devices, at scrape time (nothing when the database
    is down: ``pnp_database_up`` says so)."""

    def __init__(self, sessions: sessionmaker[Session], config: Config) -> None:
        self.sessions, self.config = sessions, config

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from app.ops.queries import counts_by_state

        try:
            with self.sessions() as session:
                counts = counts_by_state(session, self.config, utcnow())
        except SQLAlchemyError:
            return
        family = GaugeMetricFamily("pnp_devices_lifecycle", "Devices per lifecycle (as on the dashboard)",
                                   labels=["lifecycle"])
        for lifecycle in Lifecycle:
            family.add_metric([lifecycle.value], counts["lifecycle"].get(lifecycle.value, 0))
        yield family
        yield GaugeMetricFamily("pnp_devices_stalled", "Devices parked in an error, or not done and "
                                "silent longer than STALLED_AFTER", value=counts["stalled"])


def init_app(app, config: Config) -> None:
    """Add the fleet gauges to the app's /metrics and time every request."""
    from app.observability.metrics import init_http_metrics

    app.extensions.setdefault("pnp_collectors", []).append(FleetCollector(app.extensions["pnp_sessions"], config))
    init_http_metrics(app)
