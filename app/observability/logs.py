"""Logging: ``logs/pnp_debug.log``, rotating, safe with several gunicorn workers.

One line per PnP exchange (serial, correlator, service, result) at INFO; the
raw XML (credentials redacted) at DEBUG. Rotation uses concurrent-log-handler,
whose lock makes rotation safe across processes.
"""

from __future__ import annotations

import logging
import re

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
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactFilter())
    logger.addHandler(handler)
