#!/usr/bin/env python3
"""Start the PnP/ZTP server under gunicorn: ``sudo python3 run.py``.

Reads settings.py (or ``--settings FILE``), applies ``PNP_*`` environment
variables and the flags, refuses to start with a one-line reason when the
settings are incomplete, applies database migrations, prints a banner and
serves with gunicorn. Every command lives in app/cli/:

    python3 run.py --server-ip 192.0.2.10 --port 8080
    python3 run.py --check          # validate settings, print the banner, exit
    python3 run.py dhcp kea         # kea-dhcp4 config from the settings (see docs/dhcp.md)
    python3 run.py devices list     # operator CLI (also: inventory, images, config, db)
"""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path


def metrics_dir() -> None:
    """Prepare PROMETHEUS_MULTIPROC_DIR before anything of ``app`` is imported.

    prometheus-client decides at its first import whether metrics are shared
    between processes, and gunicorn's workers write their metric files there
    (app/observability/metrics.py). Without the variable each run gets its own
    folder, removed when the run ends cleanly; an operator-given folder is
    created if needed and emptied (files of an earlier run would add old
    counts to the new ones).
    """
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        path = Path(given)
        if path.is_dir():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        path.mkdir(parents=True, exist_ok=True)
        return
    path = tempfile.mkdtemp(prefix="pnp-prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    owner = os.getpid()
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(path, ignore_errors=True))


if __name__ == "__main__":
    metrics_dir()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from app.cli import main

    main()
