"""Logging: ``logs/pnp_debug.log``, rotating, safe with several gunicorn workers.

One line per PnP exchange (serial, correlator, service, result) at INFO; the
raw XML (credentials redacted) at DEBUG. Backoff polls, most of the traffic of
an idle fleet, are summarized unless LOG_LEVEL is DEBUG: one line per device
every LOG_BACKOFF_SUMMARY seconds with how many polls it made
(``BackoffSummaryFilter``). Failures are WARNING lines with the step and the
reason (app/ops/notify.py logs them from the change itself); operator actions
and logins are INFO lines of ``pnp.audit`` naming the user. ``LOG_FORMAT=json``
writes one JSON object a line (python-json-logger) with the same fields.
Rotation uses concurrent-log-handler, whose lock makes rotation safe across
processes; deploy/logrotate is the alternative for sites that rotate with
logrotate.
"""

from __future__ import annotations

import logging
import re
import time

from concurrent_log_handler import ConcurrentRotatingFileHandler

from app.config import Config


class RedactFilter(logging.Filter):
    """Masks signed-URL tokens and ``pwd=``/``password=`` values in every record."""

    _SECRET = re.compile(r"\b(pwd|password|secret|token)=(\"[^\"]*\"|'[^']*'|[^\s&\"']+)", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        from app.files.signing import redact_token

        message = record.getMessage()
        clean = redact_token(self._SECRET.sub(lambda m: f"{m.group(1)}=***", message))
        if clean != message:
            record.msg, record.args = clean, None
        return True


FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(process)d %(name)s %(message)s"
_BACKOFF = re.compile(r"^(?P<serial>\S+) .*\bbackoff\b")


class BackoffSummaryFilter(logging.Filter):
    """Turns the per-poll INFO lines of devices told to back off into one line per device
    every ``interval`` seconds: ``<SN> backoff polls: 12 in the last 300 s (2.4/min)``.

    Only ``pnp`` exchange lines that say ``backoff`` are summarized; everything else,
    and every line at DEBUG, passes. Counts are per process (each gunicorn worker
    reports the polls it answered).
    """

    def __init__(self, interval: int, clock=time.monotonic) -> None:
        super().__init__()
        self.interval, self.clock = interval, clock
        self.seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "pnp" or record.levelno != logging.INFO or self.interval <= 0:
            return True
        match = _BACKOFF.match(record.getMessage())
        if match is None:
            return True
        serial, now = match["serial"], self.clock()
        since, polls = self.seen.get(serial, (None, 0))
        if since is None:
            self.seen[serial] = (now, 0)
            return True  # the first backoff of a device is shown as it is
        polls += 1
        if now - since < self.interval:
            self.seen[serial] = (since, polls)
            return False
        self.seen[serial] = (now, 0)
        minutes = max(now - since, 1) / 60
        record.msg, record.args = ("%s backoff polls: %d in the last %d s (%.1f/min), last: %s",
                                   (serial, polls, now - since, polls / minutes, record.getMessage()))
        if len(self.seen) > 100_000:  # a bound, whatever the fleet
            self.seen.clear()
        return True


def make_formatter(config: Config) -> logging.Formatter:
    """The text formatter, or python-json-logger's JsonFormatter for LOG_FORMAT=json."""
    if config.log_format.lower() == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level", "name": "logger"})
    return logging.Formatter(FORMAT)


def setup_logging(config: Config) -> None:
    """Attach the rotating file handler to the ``pnp`` logger (once per log file)."""
    logger = logging.getLogger("pnp")
    logger.setLevel(config.log_level.upper())
    logger.propagate = True
    path = config.logs_dir / "pnp_debug.log"
    for handler in logger.handlers:
        if getattr(handler, "baseFilename", None) == str(path):
            return
    for handler in list(logger.handlers):  # a previous app in this process (tests)
        logger.removeHandler(handler)
        handler.close()
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    handler = ConcurrentRotatingFileHandler(str(path), maxBytes=config.log_max_bytes,
                                            backupCount=config.log_backup_count,
                                            encoding="utf-8")
    handler.setFormatter(make_formatter(config))
    handler.addFilter(RedactFilter())
    if config.log_level.upper() != "DEBUG" and config.log_backoff_summary > 0:
        handler.addFilter(BackoffSummaryFilter(config.log_backoff_summary))
    logger.addHandler(handler)
