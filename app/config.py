"""The configuration object: ``settings.py`` + environment + command-line flags.

``Config.load()`` reads the operator's ``settings.py`` (or any module with the
same upper-case names), applies ``PNP_<NAME>`` environment variables and
explicit overrides, and resolves the image catalogue (md5 and size). The
result is an immutable object passed into the application factory; nothing
reads settings from globals afterwards.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import ipaddress
import json
import os
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import make_url

from app.common.versions import normalise_version

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MD5_CACHE_NAME = ".md5-cache.json"
#: The image catalogue written by ``run.py images add`` (next to the images), merged with IMAGES.
CATALOGUE_NAME = "catalogue.json"
#: Files at least this large show a progress bar while their md5 is computed (bytes).
MD5_PROGRESS_SIZE = 64 * 1024 * 1024
#: Admin passwords that appear in documentation and examples: refused on an exposed server.
EXAMPLE_PASSWORDS = frozenset({"change-me", "changeme", "long secret", "admin", "password", "secret", "cisco",
                               "correct horse battery staple"})
#: Shortest admin password accepted when the server listens on more than loopback.
MIN_EXPOSED_PASSWORD = 12
_APPLET_PACKAGE = re.compile(r"app-hosting\s+install\s+appid\s+\S+\s+package\s+(\S+?)\"?\s*$",
                             re.IGNORECASE | re.MULTILINE)
_JUNOS_MODEL = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class ConfigError(ValueError):
    """Settings are incomplete or wrong; the message is one line for the operator."""


@dataclass(frozen=True)
class ImageEntry:
    """One image catalogue entry: which PIDs run which image file and version.

    ``pid`` is an fnmatch glob (``C11*``), ``file`` a name in ``images/``,
    ``version`` the IOS-XE ``versionString`` the image reports when running,
    ``md5`` 32 lower-case hex digits, ``size`` bytes.
    """

    pid: str
    file: str
    version: str
    md5: str = ""
    size: int = 0

    def matches(self, pid: str) -> bool:
        """True when the device PID matches this entry's glob (case-insensitive)."""
        return fnmatch.fnmatch((pid or "").upper(), self.pid.upper())


_INT_FIELDS = {
    "port", "public_port", "proxy_hops", "workers", "threads", "worker_connections",
    "min_bootflash_free", "image_space_margin",
    "max_attempts", "idle_backoff", "reload_wait", "reload_timeout", "max_unknown_outcomes",
    "error_retry_after", "error_retry_rounds", "duplicate_window",
    "finished_backoff", "max_guestshell_checks", "guestshell_check_backoff",
    "log_max_bytes", "log_backup_count", "log_backoff_summary", "dhcp_subnet_id", "dhcp_pnp_https_port",
    "juniper_file_port", "stalled_after", "db_wsrep_sync_wait", "db_pool_size", "db_max_overflow",
    "db_pool_timeout", "db_max_connections", "page_size", "config_url_max_age", "https_port",
    "session_idle_timeout", "session_max_age", "webhook_poll", "webhook_timeout", "webhook_max_attempts",
    "sot_timeout", "sot_retry_backoff", "unseen_device_expiry", "event_retention", "prune_interval",
}
_BOOL_FIELDS = {"dhcp_cisco", "dhcp_juniper", "dhcp_pnp_https", "dashboard_public", "require_claim",
                "signed_config_urls", "sot_verify_tls", "sot_dhcp_push", "webhook_dispatcher",
                "allow_source_change"}
_LIST_FIELDS = {"dhcp_routers", "dhcp_dns", "dhcp_ntp", "dhcp_syslog", "sot_sites", "sot_tags", "sot_statuses",
                "sot_roles", "sot_render_config", "device_networks"}
_DICT_FIELDS = {"sot_field_map"}
SOT_SOURCES = ("csv", "netbox", "nautobot")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Config:
    """Everything the server needs, with the units in the names' comments of settings.py."""

    server_ip: str = ""
    port: int = 80
    public_port: int = 0  # the port devices use when a proxy listens for us; 0 = PORT
    bind: str = "127.0.0.1"  # loopback unless told otherwise (BIND = "0.0.0.0" for devices)
    workers: int = 4
    threads: int = 8
    worker_class: str = "gevent"  # gevent | gthread (docs/slow-clients.md)
    worker_connections: int = 1000  # gevent: open connections per worker
    x_accel_redirect_prefix: str = ""
    proxy_hops: int = 0  # reverse proxies in front (nginx = 1): trust their X-Forwarded-For
    database_url: str = ""
    db_password: str = field(default="", repr=False)  # from PNP_DB_PASSWORD, never needed in the file
    db_wsrep_sync_wait: int = 0  # Galera: SET SESSION wsrep_sync_wait on every connection (0 = off)
    db_pool_size: int = 0  # MariaDB connections kept open per worker (0 = THREADS + 2)
    db_max_overflow: int = 10  # more connections a worker may open at a peak (closed again after)
    db_pool_timeout: int = 10  # seconds a request waits for a connection, then a backoff answer
    db_max_connections: int = 150  # WORKERS × (pool + overflow) must stay at or below (MariaDB: 151)
    images: tuple[ImageEntry, ...] = ()
    guestshell_tarball: str = "guestshell.17.09.01a.tar"  # the one configs/default.cfg installs
    python_script: str = ""
    script_command: str = "guestshell run python3 /bootflash/guest-share/{script}"
    script_success_marker: str = ""
    config_register: str = "0x2102"
    eem_applet: str = "InstallGuestShell"
    min_bootflash_free: int = 1026107392
    image_space_margin: int = 50 * 1024 * 1024
    max_attempts: int = 3
    retry_backoff: tuple[int, ...] = (30, 60, 120, 300)
    idle_backoff: int = 60
    reload_wait: int = 120
    reload_timeout: int = 1800
    max_unknown_outcomes: int = 10  # unknown outcomes in a row of one step before ERROR
    error_retry_after: int = 1800  # seconds before an ERROR from a transient/unknown cause is retried
    error_retry_rounds: int = 3  # automatic retries of such an ERROR; 0 = never
    duplicate_window: int = 5  # seconds: a second work-request this soon after a job gets a backoff
    finished_backoff: int = 24 * 3600
    max_guestshell_checks: int = 5
    guestshell_check_backoff: int = 30
    signed_config_urls: bool = False
    config_url_secret: str = ""
    config_url_max_age: int = 900
    https_port: int = 0
    tls_cert: str = ""
    tls_key: str = ""
    ca_bundle: str = ""
    run_as: str = ""
    url_scheme: str = "http"  # internal: "https" in the TLS listener's processes
    log_level: str = "INFO"
    log_max_bytes: int = 10 * 1024 * 1024
    log_backup_count: int = 5
    log_format: str = "text"  # text, or json (one JSON object a line, python-json-logger)
    log_backoff_summary: int = 300  # seconds: backoff polls become one rate line per device; 0 = every poll
    # --- Juniper ZTP (/ztp_fetch) -------------------------------------------
    juniper_models: dict = field(default_factory=dict)  # model -> official image file name ("" = none)
    juniper_inventory: str = "configs/juniper/inventory.csv"  # relative to root, or absolute
    # --- DHCP helper (python3 run.py dhcp ...) ---------------------------------
    dhcp_subnet: str = ""  # CIDR, e.g. 192.0.2.0/24
    dhcp_subnet_id: int = 1
    dhcp_pool: str = ""  # "192.0.2.100-192.0.2.199"
    dhcp_routers: tuple[str, ...] = ()
    dhcp_dns: tuple[str, ...] = ()
    dhcp_domain: str = ""
    dhcp_ntp: tuple[str, ...] = ()
    dhcp_cisco: bool = True
    dhcp_cisco_pids: tuple = ()  # "C9300" or {"pid": "C11", "port": 8080, ...}
    dhcp_pnp_https: bool = False
    dhcp_pnp_https_port: int = 443
    dhcp_pnp_trustpool_url: str = ""
    dhcp_pnp_ntp: str = ""
    dhcp_juniper: bool = True
    juniper_file_server: str = ""  # option 150; "" = server_ip
    juniper_file_port: int = 0  # sub-option 5; 0 = port
    juniper_transfer_mode: str = "http"
    dhcp_inventory: str = ""  # CSV of reservations; "" = juniper_inventory
    dhcp_syslog: tuple[str, ...] = ()  # option 7 (log servers: Junos ZTP reports progress there)
    dhcp_subnets: tuple = ()  # several subnets: [{"subnet": ..., "id": ..., "pool": ..., "relay": ...}, ...]
    juniper_tftp_server: str = ""  # TFTP server for JUNIPER_TRANSFER_MODE="tftp" (option 150)
    juniper_ftp_server: str = ""  # FTP server for JUNIPER_TRANSFER_MODE="ftp" (option 150)
    juniper_server_options: tuple = (150,)  # where the file server is announced: 150 and/or 66; 67 = boot file
    juniper_model_options: dict = field(default_factory=dict)  # model -> {"image_type": "symlink", ...}
    kea_control_socket: str = "/run/kea/kea4-ctrl-socket"
    kea_hooks_dir: str = ""  # "" = detect libdhcp_flex_option.so
    kea_api_user: str = ""  # Control Agent basic authentication (password: PNP_KEA_API_PASSWORD)
    kea_api_password: str = field(default="", repr=False)
    # operator console: secrets come from PNP_ADMIN_PASSWORD / PNP_ADMIN_TOKEN / PNP_SECRET_KEY
    admin_user: str = "admin"
    admin_password: str = field(default="", repr=False)
    admin_token: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    dashboard_public: bool = False
    stalled_after: int = 900
    page_size: int = 50
    require_claim: bool = False
    # failed logins per (user, address); per address (a shared NAT); per user (any address)
    login_rate_limit: str = "10 per minute"  # "" = no limit
    login_address_rate_limit: str = "60 per minute"
    login_user_rate_limit: str = "30 per minute"
    api_rate_limit: str = "600 per minute"  # requests per API token (and bad tokens per address)
    # where those counters live: "database" (default: shared by every worker and host of this
    # database), "redis://127.0.0.1:6379" (shared), or "memory://" (per worker process)
    ratelimit_storage_uri: str = "database"
    # the prefix of those counters' keys in redis/memcached: deployments that share one Redis
    # (but not one database) each take their own
    ratelimit_key_prefix: str = "pnp"
    session_idle_timeout: int = 3600  # seconds without a request before a login session ends
    session_max_age: int = 12 * 3600  # seconds after login when a session ends regardless
    # webhooks (console /webhooks): delivery queue in the database
    webhook_dispatcher: bool = True  # each server process delivers due webhooks in a thread
    webhook_poll: int = 2  # seconds between looks at the queue
    webhook_timeout: int = 10  # seconds per POST
    webhook_backoff: tuple[int, ...] = (10, 30, 60, 300, 900, 3600)  # seconds before retry n
    webhook_max_attempts: int = 8
    # --- who may be a device (docs/config-secrecy.md) ------------------------------
    device_networks: tuple[str, ...] = ()  # CIDRs allowed on /pnp, /ztp_fetch, /images, /configs, /files; () = any
    allow_source_change: bool = False  # True: a serial driven from a new address is not held
    ztp_token_secret: str = field(default="", repr=False)  # PNP_ZTP_TOKEN_SECRET: /ztp_fetch configs need a token
    # --- growth bounds (python3 run.py db prune; also run automatically) -------------
    unseen_device_expiry: int = 7 * 86400  # seconds; rows never seen past first contact, not in the inventory
    event_retention: int = 180 * 86400  # seconds of history kept; 0 = keep forever
    history_raw_xml: str = "jobs"  # raw XML in the history: "jobs" (jobs, failures, first device-info) | "all"
    prune_interval: int = 3600  # seconds between automatic prunes (per worker); 0 = only run.py db prune
    # --- source of truth (docs/source-of-truth.md) -------------------------------
    inventory_source: str = "csv"  # csv | netbox | nautobot
    sot_url: str = ""  # https://netbox.example.net
    sot_token: str = field(default="", repr=False)  # from PNP_SOT_TOKEN, never needed in the file
    sot_verify_tls: bool = True
    sot_ca_bundle: str = ""  # CA file for the source of truth's certificate ("" = system CAs)
    sot_timeout: int = 10  # seconds per API call
    sot_sites: tuple[str, ...] = ()  # NetBox site / Nautobot location names; () = all
    sot_tags: tuple[str, ...] = ()
    sot_statuses: tuple[str, ...] = ()
    sot_roles: tuple[str, ...] = ()
    sot_field_map: dict = field(default_factory=dict)  # field -> "dotted.path|fallback.path" (app/sot/mapping.py)
    sot_provisioning_interface: str = ""  # interface whose MAC is reserved; "" = mgmt-only, else first with a MAC
    sot_template: str = ""  # day-0 Jinja2 template under configs/ for source-of-truth devices without one
    sot_render_config: tuple[str, ...] = ()  # device types / tags whose day-0 the source of truth renders
    sot_webhook_secret: str = field(default="", repr=False)  # from PNP_SOT_WEBHOOK_SECRET
    sot_status_first_contact: str = ""  # e.g. "staged"; "" = no write-back
    sot_status_finished: str = ""  # e.g. "active"
    sot_status_failed: str = ""  # e.g. "failed"
    sot_unknown_status: str = ""  # with REQUIRE_CLAIM: create unknown serials with this status ("planned")
    sot_unknown_site: str = ""  # site (NetBox) / location (Nautobot) of created devices
    sot_unknown_role: str = ""  # role of created devices
    sot_retry_backoff: int = 60  # seconds before a failed write-back is tried again
    sot_dhcp_push: bool = False  # a webhook also pushes the reservations to KEA_CONTROL_SOCKET
    root: Path = PROJECT_ROOT
    catalogue_files: tuple[str, ...] = ()  # internal: image files whose entry is in images/catalogue.json
    extra: dict = field(default_factory=dict)

    # --- derived paths and URLs -------------------------------------------
    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def configs_dir(self) -> Path:
        return self.root / "configs"

    @property
    def files_dir(self) -> Path:
        return self.root / "files"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def base_url(self) -> str:
        """``http://<server_ip>[:port]``: the prefix of every URL handed to a device
        (``https://…`` in the TLS listener, whose Config has ``url_scheme="https"``)."""
        host = f"[{self.server_ip}]" if ":" in self.server_ip else self.server_ip
        port = self.device_port
        default = 443 if self.url_scheme == "https" else 80
        return f"{self.url_scheme}://{host}" if port == default else f"{self.url_scheme}://{host}:{port}"

    @property
    def device_port(self) -> int:
        """The port devices connect to: PUBLIC_PORT behind a proxy, else PORT."""
        return self.public_port or self.port

    def tls_listener(self) -> Config:
        """This Config as seen by the HTTPS listener: port HTTPS_PORT, https:// URLs."""
        return dataclasses.replace(self, port=self.https_port, public_port=0, url_scheme="https")

    @property
    def db_pool(self) -> int:
        """MariaDB connections a worker keeps open: DB_POOL_SIZE, or THREADS + 2 when 0 (a
        gthread worker then never waits for one; a gevent worker's greenlets share them)."""
        return self.db_pool_size or max(self.threads, 1) + 2

    @property
    def db_connections(self) -> int:
        """The most MariaDB connections one worker process opens: pool + DB_MAX_OVERFLOW."""
        return self.db_pool + self.db_max_overflow

    @property
    def trustpool_url(self) -> str:
        """The stable HTTP URL of the CA bundle (option 43 ``T``), "" when CA_BUNDLE is unset."""
        return f"{self.base_url}/ca/bundle.pem" if self.ca_bundle else ""

    def url(self, area: str, name: str) -> str:
        """Download URL of file ``name`` in ``area`` (images, configs, files)."""
        return f"{self.base_url}/{area}/{quote(name)}"

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, SQLite file in the project folder by default."""
        url = self.database_url or f"sqlite:///{self.root / 'pnp.sqlite3'}"
        if self.db_password and not url.startswith("sqlite"):
            url = make_url(url).set(password=self.db_password).render_as_string(hide_password=False)
        return url

    @property
    def session_secret(self) -> str:
        """The key that signs session cookies: SECRET_KEY, else derived from ADMIN_PASSWORD.

        Deriving it keeps sessions valid across gunicorn workers and restarts
        and invalidates them when the password changes.
        """
        if self.secret_key:
            return self.secret_key
        import hashlib

        return hashlib.sha256(f"pnp-session-key:{self.admin_password}".encode()).hexdigest()

    @property
    def database_label(self) -> str:
        """The database URL with any password masked, for banners and logs."""
        return make_url(self.sqlalchemy_url).render_as_string(hide_password=True)

    @property
    def juniper_configs_dir(self) -> Path:
        """``configs/juniper``: per-MAC Junos configs/scripts, templates and inventory.csv."""
        return self.configs_dir / "juniper"

    @property
    def juniper_inventory_path(self) -> Path:
        """The Juniper inventory CSV (``JUNIPER_INVENTORY``, relative to the project root)."""
        return self.root / self.juniper_inventory

    def is_device_address(self, address: str | None) -> bool:
        """True when ``address`` may act as a device: DEVICE_NETWORKS empty (any), or the
        address lies in one of its networks. An unparsable address is refused."""
        if not self.device_networks:
            return True
        try:
            ip = ipaddress.ip_address((address or "").split("%", 1)[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in ipaddress.ip_network(net) for net in self.device_networks)

    def image_for(self, pid: str) -> ImageEntry | None:
        """The first catalogue entry whose glob matches ``pid``, or None."""
        return next((e for e in self.images if e.matches(pid)), None)

    # --- loading ----------------------------------------------------------------
    @classmethod
    def load(cls, settings: types.ModuleType | str | None = "settings",
             env: dict[str, str] | None = None, resolve_images: bool = True,
             **overrides) -> Config:
        """Build a Config from a settings module, ``PNP_*`` environment and overrides.

        ``settings`` is a module, a module name, or None for defaults only.
        Environment: ``PNP_<FIELD>`` for any field, and ``DATABASE_URL``.
        Overrides (keyword arguments) win over both; None values are ignored.
        Raises ConfigError for a value that cannot be converted.
        """
        env = os.environ if env is None else env
        if isinstance(settings, str):
            settings = importlib.import_module(settings)
        values: dict = {}
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "catalogue_files"}
        for name in names:
            if settings is not None and hasattr(settings, name.upper()):
                values[name] = getattr(settings, name.upper())
        for name in names:
            raw = env.get(f"PNP_{name.upper()}")
            if raw is not None:
                values[name] = raw
        if env.get("DATABASE_URL"):
            values["database_url"] = env["DATABASE_URL"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        values = _coerce(values)
        config = cls(**values)
        config = merge_catalogue(config)
        if resolve_images:
            config = dataclasses.replace(config, images=resolve_catalogue(config))
        return config


def _coerce(values: dict) -> dict:
    """Convert environment strings and lists into the field types."""
    out = dict(values)
    try:
        for name in _INT_FIELDS & out.keys():
            out[name] = int(out[name])
        for name in _BOOL_FIELDS & out.keys():
            raw = out[name]
            if isinstance(raw, str):
                if raw.strip().lower() not in _TRUE | _FALSE:
                    raise ValueError(f"{name.upper()}={raw!r} is not a boolean (true/false)")
                raw = raw.strip().lower() in _TRUE
            out[name] = bool(raw)
        for name in ("retry_backoff", "webhook_backoff"):
            if name not in out:
                continue
            raw = out[name]
            if isinstance(raw, str):
                raw = [x for x in raw.replace(",", " ").split()]
            out[name] = tuple(int(x) for x in raw) or (60,)
        for name in _LIST_FIELDS & out.keys():
            raw = out[name]
            if isinstance(raw, str):
                raw = raw.replace(",", " ").split()
            out[name] = tuple(str(x) for x in raw)
        if "device_networks" in out:
            out["device_networks"] = tuple(str(ipaddress.ip_network(n, strict=False))
                                           for n in out["device_networks"])
        if "dhcp_cisco_pids" in out:
            raw = out["dhcp_cisco_pids"]
            if isinstance(raw, str):
                raw = json.loads(raw) if raw.strip().startswith("[") else raw.replace(",", " ").split()
            out["dhcp_cisco_pids"] = tuple(raw)
        for name in _DICT_FIELDS & out.keys():
            raw = out[name]
            if isinstance(raw, str):
                raw = json.loads(raw) if raw.strip() else {}
            if not isinstance(raw, dict):
                raise ValueError(f"{name.upper()} must be a dict")
            out[name] = {str(k): str(v) for k, v in raw.items()}
        if "dhcp_subnets" in out:
            raw = out["dhcp_subnets"]
            if isinstance(raw, str):
                raw = json.loads(raw) if raw.strip() else []
            if isinstance(raw, dict) or not all(isinstance(x, dict) for x in raw):
                raise ValueError("DHCP_SUBNETS must be a list of dicts ({\"subnet\": ..., \"id\": ..., ...})")
            out["dhcp_subnets"] = tuple(dict(x) for x in raw)
        if "juniper_server_options" in out:
            raw = out["juniper_server_options"]
            if isinstance(raw, str):
                raw = raw.replace(",", " ").split()
            out["juniper_server_options"] = tuple(int(x) for x in raw)
        if "juniper_model_options" in out:
            raw = out["juniper_model_options"]
            if isinstance(raw, str):
                raw = json.loads(raw) if raw.strip() else {}
            if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
                raise ValueError("JUNIPER_MODEL_OPTIONS must be a dict: model -> {sub-option: value}")
            out["juniper_model_options"] = {str(k): dict(v) for k, v in raw.items()}
        if "juniper_models" in out:
            raw = out["juniper_models"]
            if isinstance(raw, str):
                raw = json.loads(raw) if raw.strip() else {}
            if not isinstance(raw, dict):
                raise ValueError("JUNIPER_MODELS must be a dict: model -> official image file name")
            out["juniper_models"] = {str(k): str(v or "") for k, v in raw.items()}
        if "images" in out:
            raw = out["images"]
            if isinstance(raw, str):
                raw = json.loads(raw)
            out["images"] = tuple(
                e if isinstance(e, ImageEntry) else ImageEntry(**e) for e in raw)
        if "root" in out:
            out["root"] = Path(out["root"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc
    return out


def resolve_catalogue(config: Config) -> tuple[ImageEntry, ...]:
    """Fill in md5 and size of each catalogue image present in ``images/``.

    An md5 given in the settings is kept. Otherwise the md5 is read from
    ``images/.md5-cache.json`` when the file's size and mtime are unchanged,
    and computed (then cached) only when they changed: a 700 MB image is
    hashed once, not at every start. Missing files keep md5 "" and size 0;
    ``validate()`` reports them.
    """
    cache_path = config.images_dir / MD5_CACHE_NAME
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    changed = False
    entries = []
    for entry in config.images:
        path = config.images_dir / entry.file
        try:
            st = path.stat()
        except OSError:
            entries.append(entry)
            continue
        md5 = entry.md5.lower()
        if not md5:
            key = {"size": st.st_size, "mtime": st.st_mtime}
            hit = cache.get(entry.file)
            if hit and hit.get("size") == key["size"] and hit.get("mtime") == key["mtime"]:
                md5 = hit["md5"]
            else:
                md5 = file_md5(path, progress=st.st_size >= MD5_PROGRESS_SIZE)
                cache[entry.file] = {**key, "md5": md5}
                changed = True
        entries.append(dataclasses.replace(entry, md5=md5, size=entry.size or st.st_size))
    if changed:
        try:
            cache_path.write_text(json.dumps(cache, indent=1, sort_keys=True))
        except OSError:
            pass  # read-only images folder: the md5 is simply computed again next start
    return tuple(entries)


def file_md5(path: Path, chunk: int = 1 << 20, progress: bool = False) -> str:
    """MD5 of a file as 32 lower-case hex digits, read in 1 MiB chunks.

    With ``progress`` a tqdm bar (bytes, on stderr) shows how far the hashing got:
    a 700 MB image takes a while on a slow disk.
    """
    import hashlib

    from tqdm import tqdm

    digest = hashlib.md5(usedforsecurity=False)
    size = Path(path).stat().st_size
    with open(path, "rb") as fh, tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                                      desc=f"md5 {Path(path).name}", disable=not progress,
                                      mininterval=0.5, leave=True) as bar:
        while block := fh.read(chunk):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def catalogue_path(config: Config) -> Path:
    """``images/catalogue.json``: the entries recorded by ``run.py images add``."""
    return config.images_dir / CATALOGUE_NAME


def read_catalogue(config: Config) -> list[dict]:
    """The entries of ``images/catalogue.json`` (``[]`` when absent).

    Raises ConfigError with a one-line reason when the file is not a JSON list
    of objects with pid, file and version.
    """
    path = catalogue_path(config)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(raw, list) or not all(
            isinstance(e, dict) and {"pid", "file", "version"} <= e.keys() for e in raw):
        raise ConfigError(f"{path}: must be a JSON list of {{pid, file, version, md5, size}} entries")
    return raw


def write_catalogue(config: Config, entries: list[dict]) -> None:
    """Replace ``images/catalogue.json`` atomically (write a temporary file, then rename)."""
    path = catalogue_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(entries, indent=1) + "\n")
    os.replace(tmp, path)


def merge_catalogue(config: Config) -> Config:
    """IMAGES from the settings followed by the entries of ``images/catalogue.json``.

    A settings entry for the same file wins over the catalogue's (first match
    wins, settings first). The catalogue's md5 is not trusted blindly: like a
    settings entry without md5 it goes through the size/mtime md5 cache
    (``resolve_catalogue``), so a replaced file is hashed again.
    """
    settings_entries = [e for e in config.images if e.file not in config.catalogue_files]
    known = {e.file for e in settings_entries}
    added = []
    for raw in read_catalogue(config):
        if raw["file"] in known:
            continue
        try:
            added.append(ImageEntry(pid=str(raw["pid"]), file=str(raw["file"]), version=str(raw["version"])))
        except TypeError as exc:  # pragma: no cover - read_catalogue checked the keys
            raise ConfigError(f"{catalogue_path(config)}: {exc}") from exc
    return dataclasses.replace(config, images=tuple(settings_entries + added),
                               catalogue_files=tuple(e.file for e in added))


def applet_tarball(text: str) -> str | None:
    """The package an ``app-hosting install appid … package <path>`` line of a config names
    (file name only, ``bootflash:`` and folders stripped), or None when there is no such line."""
    m = _APPLET_PACKAGE.search(text)
    if not m:
        return None
    return m.group(1).split(":", 1)[-1].rsplit("/", 1)[-1]


def exposed(bind: str) -> bool:
    """True when a listen address is reachable from other hosts (anything but loopback)."""
    import ipaddress

    if bind in ("", "*", "0.0.0.0", "::"):
        return True
    try:
        return not ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        return bind != "localhost"


def validate(config: Config) -> list[str]:
    """Problems that stop the server from starting, one line each (empty = fine)."""
    problems = []
    if not config.server_ip:
        problems.append("SERVER_IP is not set (settings.py, PNP_SERVER_IP or --server-ip): "
                        "devices need it in option 43 and in every download URL")
    if not 1 <= config.port <= 65535:
        problems.append(f"PORT {config.port} is not a TCP port (1-65535)")
    for entry in config.images:
        if not (config.images_dir / entry.file).is_file():
            problems.append(f"image {entry.file} (for PID {entry.pid}) is missing from "
                            f"{config.images_dir}")
        if normalise_version(entry.version) is None:
            problems.append(f"image {entry.file}: version {entry.version!r} is not an "
                            "IOS-XE version such as 17.12.3a")
    for name, label in ((config.guestshell_tarball, "GUESTSHELL_TARBALL"),
                        (config.python_script, "PYTHON_SCRIPT")):
        if name and not (config.files_dir / name).is_file():
            problems.append(f"{label} {name} is missing from {config.files_dir}")
    for model, image in config.juniper_models.items():
        problem = check_model(model)
        if problem:
            problems.append(f"JUNIPER_MODELS: {problem}")
        if image and ("/" in image or not (config.images_dir / image).is_file()):
            problems.append(f"Juniper image {image} (for model {model}) is missing from {config.images_dir}")
    default_cfg = config.configs_dir / "default.cfg"
    if not default_cfg.is_file():
        problems.append(f"configs/default.cfg is missing from {config.configs_dir}")
    else:
        named = applet_tarball(default_cfg.read_text(errors="replace"))
        if named and named != config.guestshell_tarball:
            served = (f"GUESTSHELL_TARBALL is {config.guestshell_tarball!r}" if config.guestshell_tarball
                      else "GUESTSHELL_TARBALL is not set")
            problems.append(f"configs/default.cfg: its EEM applet installs {named} but {served}: "
                            f"set GUESTSHELL_TARBALL = {named!r} (file in files/) or edit the applet")
    problem = password_problem(config)
    if problem:
        problems.append(problem)
    if config.max_attempts < 1:
        problems.append("MAX_ATTEMPTS must be at least 1")
    if config.max_unknown_outcomes < 1:
        problems.append("MAX_UNKNOWN_OUTCOMES must be at least 1")
    if config.error_retry_after < 0 or config.error_retry_rounds < 0 or config.duplicate_window < 0:
        problems.append("ERROR_RETRY_AFTER, ERROR_RETRY_ROUNDS and DUPLICATE_WINDOW cannot be negative")
    if config.worker_class not in ("gevent", "gthread"):
        problems.append(f"WORKER_CLASS {config.worker_class!r} must be gevent or gthread (docs/slow-clients.md)")
    if config.db_pool_size < 0 or config.db_max_overflow < 0 or config.db_pool_timeout < 1:
        problems.append("DB_POOL_SIZE and DB_MAX_OVERFLOW cannot be negative, DB_POOL_TIMEOUT must be at least 1 s")
    elif config.workers * config.db_connections > config.db_max_connections:
        problems.append(f"WORKERS × (DB_POOL_SIZE + DB_MAX_OVERFLOW) = {config.workers} × "
                        f"{config.db_connections} = {config.workers * config.db_connections} database "
                        f"connections, above DB_MAX_CONNECTIONS = {config.db_max_connections}: lower them, or "
                        "raise MariaDB's max_connections and DB_MAX_CONNECTIONS with it (README \"MariaDB\")")
    if config.history_raw_xml not in ("jobs", "all"):
        problems.append(f"HISTORY_RAW_XML {config.history_raw_xml!r} must be \"jobs\" or \"all\"")
    if config.worker_class == "gevent" and "+mysqldb" in (config.database_url or "").split("://")[0]:
        problems.append("DATABASE_URL names mysqlclient (mysql+mysqldb://), which blocks gevent workers: "
                        "use mysql:// (PyMySQL under gevent) or WORKER_CLASS = \"gthread\" (README \"MariaDB\")")
    if config.ztp_token_secret and len(config.ztp_token_secret) < 16:
        problems.append("ZTP_TOKEN_SECRET must have 16+ characters (PNP_ZTP_TOKEN_SECRET, e.g. "
                        "from `openssl rand -hex 32`)")
    if config.signed_config_urls and len(config.config_url_secret) < 16:
        problems.append("SIGNED_CONFIG_URLS needs CONFIG_URL_SECRET (16+ characters; set "
                        "PNP_CONFIG_URL_SECRET in the environment, e.g. from `openssl rand -hex 32`)")
    if config.https_port:
        for value, label in ((config.tls_cert, "TLS_CERT"), (config.tls_key, "TLS_KEY")):
            if not value or not Path(value).is_file():
                problems.append(f"HTTPS_PORT is set but {label} {value!r} is not a readable file")
    if config.ca_bundle and not Path(config.ca_bundle).is_file():
        problems.append(f"CA_BUNDLE {config.ca_bundle!r} is not a file")
    problems.extend(validate_sot(config))
    return problems


def validate_sot(config: Config) -> list[str]:
    """Problems of the source-of-truth settings (INVENTORY_SOURCE, SOT_*), one line each."""
    problems = []
    if config.inventory_source not in SOT_SOURCES:
        problems.append(f"INVENTORY_SOURCE {config.inventory_source!r} must be one of {', '.join(SOT_SOURCES)}")
    elif config.inventory_source != "csv":
        if not config.sot_url.startswith(("http://", "https://")):
            problems.append(f"INVENTORY_SOURCE {config.inventory_source} needs SOT_URL (https://...)")
        if not config.sot_token:
            problems.append(f"INVENTORY_SOURCE {config.inventory_source} needs an API token in PNP_SOT_TOKEN")
    if config.sot_ca_bundle and not Path(config.sot_ca_bundle).is_file():
        problems.append(f"SOT_CA_BUNDLE {config.sot_ca_bundle!r} is not a file")
    return problems


def password_problem(config: Config) -> str | None:
    """Why an exposed server (BIND not loopback) must not start with this admin password, or None.

    No password at all is fine (no login possible); a short one or one that
    appears in documentation (``EXAMPLE_PASSWORDS``) is not.
    """
    password = config.admin_password
    if not password or not exposed(config.bind):
        return None
    if password.strip().lower() in EXAMPLE_PASSWORDS:
        return (f"BIND {config.bind} reaches other hosts and PNP_ADMIN_PASSWORD is an example from the "
                "documentation: choose your own (e.g. PNP_ADMIN_PASSWORD=$(openssl rand -base64 18))")
    if len(password) < MIN_EXPOSED_PASSWORD:
        return (f"BIND {config.bind} reaches other hosts and PNP_ADMIN_PASSWORD has {len(password)} "
                f"characters: use at least {MIN_EXPOSED_PASSWORD} (or --bind 127.0.0.1)")
    return None


def check_model(model: str) -> str | None:
    """None when ``model`` is a Junos model as sent in option 60 (``ex4300-48p``), else the problem."""
    if not isinstance(model, str) or not _JUNOS_MODEL.match(model):
        return (f"model {model!r} must be lower-case letters/digits separated by '-' "
                "as Junos sends it in option 60 (e.g. 'ex4300-48p')")
    return None


def get_config() -> Config:
    """The Config of the current Flask application (``create_app`` stored it)."""
    from flask import current_app

    return current_app.config["PNP"]
