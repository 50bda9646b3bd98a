#!/usr/bin/env python3
"""Start the PnP/ZTP server under gunicorn: ``sudo python3 run.py``.

Reads settings.py (or ``--settings FILE``), applies ``PNP_*`` environment
variables and the flags, refuses to start with a one-line reason when the
settings are incomplete, applies database migrations, prints a banner and
serves with gunicorn. Every command lives in app/cli/:

    python3 run.py --server-ip 192.0.2.10 --port 8080
    python3 run.py --check          # validate settings, print the banner, exit
    python3 run.py demo             # the server + simulated ISR1k devices on 127.0.0.1
    python3 run.py dhcp kea         # kea-dhcp4 config from the settings (see docs/dhcp.md)
    python3 run.py devices list     # operator CLI (also: inventory, images, config, db)
"""

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
#: Modules run.py cannot do without (from requirements.txt), checked when there is no .venv.
NEEDED = ("flask", "sqlalchemy", "alembic", "gunicorn", "click", "tqdm", "prometheus_client", "requests")


def use_project_venv(script: Path | None = None) -> None:
    """Re-execute run.py (or ``script``: bench/run) under the project's ``.venv`` when another
    interpreter started it.

    ``sudo python3 run.py`` on Debian runs Debian's python3, which cannot have
    the requirements installed system-wide (externally-managed-environment);
    they live in ``.venv``. One line on stderr says so. Without a ``.venv``,
    an interpreter that has every requirement carries on (a developer's own
    Python); one that lacks them stops with one line giving the command that
    creates the venv. ``PNP_NO_VENV=1`` turns the re-execution off.
    """
    if os.environ.get("PNP_NO_VENV") or Path(sys.prefix).resolve() == VENV.resolve():
        return
    python = VENV / "bin" / "python"
    if python.exists() and not os.environ.get("PNP_VENV_REEXEC"):
        script = (script or Path(__file__)).resolve()
        print(f"{script.name}: {sys.executable} is not the project's interpreter; re-running under {python}",
              file=sys.stderr, flush=True)
        os.environ["PNP_VENV_REEXEC"] = "1"  # no loop should the venv be broken
        os.execv(str(python), [str(python), str(script), *sys.argv[1:]])
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        print(f"run.py: no virtual environment in {VENV} and {sys.executable} lacks {', '.join(missing)}; "
              f"create it: python3 -m venv {VENV} && {VENV}/bin/pip install -r {ROOT}/requirements.lock "
              "(Debian: apt-get install python3-venv first)", file=sys.stderr)
        sys.exit(2)


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
    use_project_venv()
    metrics_dir()
    sys.path.insert(0, str(ROOT))
    from app.cli import main

    main()
