"""Starting the server: settings, the start banner, gunicorn, privilege drop.

``build_config()`` reads settings.py (or ``--settings FILE``) and the ``PNP_*``
environment; ``banner()`` is what ``run.py`` prints; ``serve()`` runs gunicorn
(workers × threads from the settings) and, with HTTPS_PORT, a TLS listener.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

from app.config import PROJECT_ROOT, Config, ConfigError, exposed

ROOT = PROJECT_ROOT


def load_settings(path: str | None):
    """Import the operator's settings file as a module (default: ./settings.py)."""
    path = Path(path or os.environ.get("PNP_SETTINGS") or ROOT / "settings.py")
    if not path.is_file():
        raise ConfigError(f"settings file {path} not found")
    spec = importlib.util.spec_from_file_location("pnp_settings", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a typo in settings.py: say where, in one line
        raise ConfigError(f"{path}: {exc.__class__.__name__}: {exc}") from exc
    return module


def build_config(settings_path: str | None, **overrides) -> Config:
    """The Config for this run; ConfigError carries a one-line reason."""
    return Config.load(load_settings(settings_path), **overrides)


def banner(config: Config, check: bool = False) -> str:
    """The start banner: where we listen, the URLs devices get, the database, the images.

    ``check`` (``run.py --check``): the same facts under a first line that says
    nothing was started.
    """
    from app.pnp.workflow import skipped_steps
    images = "\n".join(
        f"  {e.pid:<16} {e.file} ({e.version}, md5 {e.md5 or '?'}, {e.size} bytes)"
        for e in config.images) or "  (none: devices keep their running image)"
    https = "" if config.port != 443 else " (port 443 without TLS)"
    login = (f"login {config.admin_user}" if config.admin_password
             else "no login possible: set PNP_ADMIN_PASSWORD")
    if config.dashboard_public:
        login += ", read-only view public"
    if config.admin_token:
        login += ", API token set"
    skipped = ", ".join(f"{n} ({why})" for n, why in skipped_steps(config)) or "none: all 13 run"
    first = ("Settings check (--check): the settings are valid; nothing was started"
             if check else "Running PnP server (gunicorn). Stop with ctrl+c")
    exposure = "" if exposed(config.bind) else " (this host only: --bind 0.0.0.0 for devices)"
    return f"""{first}

Bind to IP-address      : {config.bind}{exposure}
Listen on port          : {config.port}{https}
HTTPS listener          : {_https_line(config)}
Server IP for devices   : {config.server_ip}
Option 43 (Cisco PnP)   : 5A1N;B2;K4;I{config.server_ip};J{config.device_port}
Image file(s) base URL  : {config.base_url}/images
Config file(s) base URL : {config.base_url}/configs
Other file(s) base URL  : {config.base_url}/files
Juniper ZTP             : {config.base_url}/ztp_fetch/<mode>/<VCI>/<mac> ({len(config.juniper_models)} models)
Device networks         : {_device_networks_line(config)}
Dashboard               : {config.base_url}/dashboard ({login})
Database                : {config.database_label}
Workers                 : {_workers_line(config)}
Workers run as          : {_run_as_line(config)}
Guestshell tarball      : {config.guestshell_tarball or '(not set: step skipped)'}
Python script           : {config.python_script or '(not set: step skipped)'}
Steps skipped           : {skipped}
Target images:
{images}
"""


def _workers_line(config: Config) -> str:
    if config.worker_class == "gevent":
        return f"{config.workers} gevent workers x {config.worker_connections} connections"
    return f"{config.workers} x {config.threads} threads (gthread: a slow client holds a thread)"


def _device_networks_line(config: Config) -> str:
    if config.device_networks:
        return ", ".join(config.device_networks) + (" (X-Forwarded-For of PROXY_HOPS trusted)"
                                                    if config.proxy_hops else "")
    return ("any -- WARNING: every host can act as a device (set DEVICE_NETWORKS = ['192.0.2.0/24']; "
            "docs/config-secrecy.md)")


def _run_as_line(config: Config) -> str:
    if os.geteuid() != 0:
        return f"uid {os.geteuid()} (not root: nothing to drop)"
    if config.run_as:
        return f"{config.run_as} (workers drop root after the port is bound)"
    return "root (set RUN_AS = 'pnp' in settings.py to drop privileges; docs/least-privilege.md)"


def _writable_by(path: Path, uid: int, gids: set[int]) -> bool:
    st = path.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & 0o200)
    if st.st_gid in gids:
        return bool(st.st_mode & 0o020)
    return bool(st.st_mode & 0o002)


def prepare_run_as(config: Config) -> str | None:
    """Before dropping to RUN_AS: hand it logs/ and the SQLite file; None or a one-line problem.

    Only acts when started as root with RUN_AS set. ``logs/`` (folder and files)
    and the SQLite database file with its ``-wal``/``-shm`` companions are
    chowned to the user. SQLite also creates files next to the database, so its
    folder must be writable by the user: that folder is not chowned (it may be
    the project folder); the problem is reported instead.
    """
    if not config.run_as or os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(config.run_as)
    except KeyError:
        return f"RUN_AS user {config.run_as!r} does not exist (e.g. sudo useradd --system pnp)"
    uid, gid = entry.pw_uid, entry.pw_gid
    gids = set(os.getgrouplist(config.run_as, gid))
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    for path in [config.logs_dir, *config.logs_dir.iterdir()]:
        os.chown(path, uid, gid)
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")  # set by run.py (metrics_dir)
    if metrics_dir and Path(metrics_dir).is_dir():
        for path in [Path(metrics_dir), *Path(metrics_dir).iterdir()]:
            os.chown(path, uid, gid)  # workers write their metric files there
    url = config.sqlalchemy_url
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            if path.exists():
                os.chown(path, uid, gid)
        if not _writable_by(db.parent, uid, gids):
            return (f"RUN_AS {config.run_as}: SQLite needs {db.parent} writable by that user "
                    f"(sudo chown {config.run_as} {db.parent}), or put the database in a folder of its "
                    f"own: DATABASE_URL=sqlite:////var/lib/pnp/pnp.sqlite3")
    return None


def _https_line(config: Config) -> str:
    if not config.https_port:
        return "(off: set HTTPS_PORT, TLS_CERT, TLS_KEY; docs/https.md)"
    tls = config.tls_listener()
    trust = f";T{config.trustpool_url};Z<NTP server>" if config.trustpool_url else ""
    return (f"port {config.https_port}, {tls.base_url}; option 43 "
            f"5A1N;B2;K5;I{config.server_ip};J{config.https_port}{trust}")


def check_bind(config: Config) -> str | None:
    family = socket.AF_INET6 if ":" in config.bind else socket.AF_INET
    for port in (config.port, config.https_port):
        if not port:
            continue
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((config.bind, port))
            except PermissionError:
                return (f"cannot bind {config.bind}:{port}: ports below 1024 need root "
                        "(sudo python3 run.py) or CAP_NET_BIND_SERVICE; or use --port 8080")
            except OSError as exc:
                return f"cannot bind {config.bind}:{port}: {exc.strerror}"
    return None


def _cooperative_sendfile(sock, file, offset: int = 0, count: int | None = None) -> int:
    """``socket.sendfile`` for gevent sockets with ``os.sendfile`` (zero-copy), waiting for the
    socket with gevent (never blocking the worker's other greenlets); returns the bytes sent.

    gevent's own ``socket.sendfile`` never uses ``os.sendfile`` (it is not cooperative
    there): it reads the file into Python in 8 KiB blocks and ``send``s them, so an image
    download under the gevent worker went through user space. This follows CPython's
    ``socket._sendfile_use_sendfile`` (Lib/socket.py): the file position is left at the end
    of what was sent, also when the client goes away part-way (the download's byte count,
    app/files/serving.py, reads it there). A file without a descriptor or an ``os.sendfile``
    refused before the first byte falls back to gevent's read-and-send.
    """
    import errno
    import io

    try:
        fileno = file.fileno()
        size = os.fstat(fileno).st_size
    except (AttributeError, io.UnsupportedOperation, OSError):
        return sock._sendfile_use_send(file, offset, count)
    if not size:
        return sock._sendfile_use_send(file, offset, count)
    sock._check_sendfile_params(file, offset, count)
    blocksize = min(count or size, 1 << 30)
    total = 0
    try:
        while True:
            if count:
                blocksize = min(count - total, blocksize)
                if blocksize <= 0:
                    break
            try:
                sent = os.sendfile(sock.fileno(), fileno, offset, blocksize)
            except BlockingIOError:
                sock._wait(sock._write_event)  # raises socket.timeout after the socket's timeout
                continue
            except OSError as exc:
                if total == 0 and exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    return sock._sendfile_use_send(file, offset, count)
                raise
            if sent == 0:
                break  # end of file
            offset += sent
            total += sent
        return total
    finally:
        if total > 0 and hasattr(file, "seek"):
            file.seek(offset)


def _gevent_zero_copy() -> None:
    """Let gevent sockets send files with ``os.sendfile`` (see :func:`_cooperative_sendfile`);
    gunicorn's Response.sendfile calls ``sock.sendfile`` for every file download."""
    from gevent import socket as gevent_socket

    gevent_socket.socket.sendfile = _cooperative_sendfile


def _post_worker_init(worker) -> None:
    """gunicorn ``post_worker_init``: ctrl+c is the master's; a gevent worker sends files zero-copy."""
    _workers_leave_ctrl_c_to_the_master(worker)
    if type(worker).__module__.startswith("gunicorn.workers.ggevent"):
        _gevent_zero_copy()


def _workers_leave_ctrl_c_to_the_master(worker) -> None:
    """gunicorn ``post_worker_init``: a worker ignores SIGINT.

    ctrl+c sends SIGINT to the whole process group; the master then sends
    SIGQUIT to each worker. A gthread worker that gets both runs its quit
    handler twice, nested, and deadlocks in ThreadPoolExecutor.shutdown until
    the master SIGKILLs it after GRACEFUL_TIMEOUT (30 s). The master alone
    handles ctrl+c; the workers stop at its SIGQUIT.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def gunicorn_options(config: Config, tls: bool = False) -> dict:
    """gunicorn settings for the HTTP listener, or with ``tls`` for the HTTPS one.

    gunicorn applies one certificate to every bind of an arbiter, so HTTPS is a
    second arbiter (see ``serve()``). With RUN_AS (and started as root) the
    workers switch to that user after the master has bound the port.
    """
    port = config.https_port if tls else config.port
    options = {
        "bind": f"[{config.bind}]:{port}" if ":" in config.bind else f"{config.bind}:{port}",
        "workers": config.workers, "threads": config.threads,
        "worker_class": config.worker_class, "worker_connections": config.worker_connections,
        "timeout": 120, "graceful_timeout": 10 if config.worker_class == "gevent" else 30,
        "keepalive": 5,
        "accesslog": str(config.logs_dir / ("access-https.log" if tls else "access.log")),
        # combined format plus the duration in microseconds (%(D)s) and the worker pid
        "access_log_format": '%(h)s - %(u)s %(t)s "%(r)s" %(s)s %(B)s "%(f)s" "%(a)s" %(D)sus pid=%(p)s',
        "errorlog": "-", "loglevel": "warning",
        "proc_name": "pnp-server-https" if tls else "pnp-server",
        "post_worker_init": _post_worker_init,
    }
    if tls:
        options.update(certfile=config.tls_cert, keyfile=config.tls_key)
    if config.run_as and os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam(config.run_as)
        # preload: the app (every import, the log handler) is built by the root master, so
        # the workers need read access to nothing but the served folders and the database.
        # gunicorn's initgroups=True skips setgid (the worker would keep gid 0), so the
        # supplementary groups are set in post_fork (still root) and gunicorn then does
        # setgid + setuid.
        groups = os.getgrouplist(config.run_as, entry.pw_gid)

        def post_fork(server, worker):
            os.setgroups(groups)

        options.update(user=entry.pw_uid, group=entry.pw_gid, umask=0o027, initgroups=False,
                       preload_app=True, post_fork=post_fork)
    return options


def serve(config: Config) -> None:
    """Run gunicorn in this process; with HTTPS_PORT also a TLS arbiter in a child process.

    The child is forked before any thread exists and dies with the parent
    (PR_SET_PDEATHSIG), so ctrl+c, SIGTERM or SIGKILL of run.py stop both.
    """
    from gunicorn.app.base import BaseApplication
    from gunicorn.glogging import Logger

    from app import create_app
    from app.files.serving import DOWNLOAD_ENVIRON_KEY
    from app.files.signing import redact_token

    class RedactingLogger(Logger):
        """gunicorn's logger with signed-URL tokens masked in the access log."""

        def atoms(self, resp, req, environ, request_time):
            atoms = super().atoms(resp, req, environ, request_time)
            for key in ("r", "U", "q", "f"):
                if isinstance(atoms.get(key), str):
                    atoms[key] = redact_token(atoms[key])
            download = environ.get(DOWNLOAD_ENVIRON_KEY)
            if download is not None:
                # gunicorn counts the bytes it writes itself (resp.sent), but not those its
                # sendfile path sends: a full image download was logged as 0 bytes. The
                # download's file knows how far it was sent (also when cut off).
                atoms["B"] = max(download.sent, atoms.get("B") or 0)
                atoms["b"] = str(atoms["B"])
            return atoms

    from app.observability.metrics import worker_exit

    class PnpApplication(BaseApplication):
        def __init__(self, app_config: Config, tls: bool):
            self.app_config, self.tls = app_config, tls
            super().__init__()

        def load_config(self):
            options = gunicorn_options(self.app_config, self.tls)
            options["child_exit"] = lambda _server, worker: worker_exit(worker.pid)
            for key, value in options.items():
                self.cfg.set(key, value)
            self.cfg.set("logger_class", RedactingLogger)

        def load(self):
            app = create_app(self.app_config.tls_listener() if self.tls else self.app_config)
            if self.cfg.preload_app:
                app.extensions["pnp_engine"].dispose()  # no connection crosses the fork
                prepare_run_as(self.app_config)  # log files the app just created
            return app

    if config.https_port:
        parent = os.getpid()
        child = os.fork()
        if child == 0:
            _die_with_parent(parent)
            PnpApplication(config, tls=True).run()
            os._exit(0)
    PnpApplication(config, tls=False).run()


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no orphaned TLS listener)."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)
