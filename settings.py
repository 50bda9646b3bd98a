"""Operator settings for the PnP/ZTP server.

Edit this file for your lab. Every value can also be overridden from the
environment (``PNP_<NAME>``, e.g. ``PNP_SERVER_IP=192.0.2.10``) and the most
common ones from ``run.py`` flags (``--server-ip``, ``--port``, ``--database``).
Secrets never need to be written here: the database password comes from
``PNP_DB_PASSWORD`` (or a full ``DATABASE_URL`` in the environment).
"""

# --- Where devices reach us -------------------------------------------------
# The address devices use to reach this server: it goes into option 43
# (``5A1N;B2;K4;I<SERVER_IP>;J<PORT>``) and into every download URL.
SERVER_IP = ""  # required, e.g. "192.0.2.10"
PORT = 80  # the HTTP port devices use (option 43 J token)
BIND = "0.0.0.0"  # listen address

# --- Server processes ---------------------------------------------------------
WORKERS = 4  # gunicorn worker processes
THREADS = 8  # threads per worker (image downloads hold a thread each)
# Hand file downloads to nginx with X-Accel-Redirect (see deploy/nginx.conf).
# Empty = this server streams the files itself.
X_ACCEL_REDIRECT_PREFIX = ""

# --- Database ----------------------------------------------------------------
# Empty = the embedded SQLite file pnp.sqlite3 in the project folder.
# MariaDB: "mysql+pymysql://pnp@127.0.0.1:3306/pnp" (password from PNP_DB_PASSWORD).
DATABASE_URL = ""

# --- Image catalogue ------------------------------------------------------------
# One entry per platform. "pid" is a glob matched against the device PID
# (first match wins). "file" lives in images/. "version" is the version
# IOS-XE reports once the image runs (17.12.3a for ...17.12.03a.SPA.bin).
# "md5" and "size" may be left out: they are computed once and cached in
# images/.md5-cache.json by file size and mtime.
IMAGES = [
    # {"pid": "C11*", "file": "c1100-universalk9.17.12.03a.SPA.bin", "version": "17.12.3a"},
]

# --- Files for the guestshell steps ----------------------------------------------
GUESTSHELL_TARBALL = ""  # in files/, e.g. "guestshell.17.09.01a.tar"; empty = step skipped
PYTHON_SCRIPT = "pxs.py"  # in files/, copied to bootflash:guest-share/; empty = steps skipped
# The command run in guestshell; {script} is the file name above.
SCRIPT_COMMAND = "guestshell run python3 /bootflash/guest-share/{script}"
# The script counts as successful only if its output contains this text
# (empty = any output without a Python traceback).
SCRIPT_SUCCESS_MARKER = ""

# --- Workflow ------------------------------------------------------------------------
CONFIG_REGISTER = "0x2102"
EEM_APPLET = "InstallGuestShell"  # defined in configs/default.cfg
MIN_BOOTFLASH_FREE = 1026107392  # bytes needed for guestshell (step 11)
IMAGE_SPACE_MARGIN = 50 * 1024 * 1024  # free space needed beyond the image size

MAX_ATTEMPTS = 3  # tries of one step before the device goes to ERROR
RETRY_BACKOFF = [30, 60, 120, 300]  # seconds before retry n (last value repeats)
IDLE_BACKOFF = 60  # seconds a parked device (ERROR, BOOTFLASH_NO_SPACE) waits
RELOAD_WAIT = 120  # seconds of backoff while a device reloads after image-install
RELOAD_TIMEOUT = 1800  # after this many seconds without a reload, check the version anyway
FINISHED_BACKOFF = 24 * 3600  # seconds a finished device is told to wait
MAX_GUESTSHELL_CHECKS = 5  # "show app-hosting list" checks before ERROR
GUESTSHELL_CHECK_BACKOFF = 30  # seconds between guestshell checks

# --- Security ----------------------------------------------------------------------
# Day-0 configs only through signed, expiring URLs bound to the serial number
# (plain /configs/<file> then answers 403). The secret comes from the
# environment, never from this file: PNP_CONFIG_URL_SECRET=$(openssl rand -hex 32)
SIGNED_CONFIG_URLS = False
CONFIG_URL_MAX_AGE = 900  # seconds a signed config URL stays valid
# HTTPS listener next to the HTTP one (docs/https.md). 0 = off.
HTTPS_PORT = 0  # e.g. 443 (option 43: K5;J443;T<trustpool URL>;Z<NTP>)
TLS_CERT = ""  # PEM: server certificate (+ chain), SAN = SERVER_IP
TLS_KEY = ""  # PEM: its private key (readable by root / the service user only)
CA_BUNDLE = ""  # PEM served at http://<SERVER_IP>[:PORT]/ca/bundle.pem (option 43 T)
# sudo python3 run.py: workers switch to this user after binding (docs/least-privilege.md).
# Empty = stay root (not recommended). Not needed with deploy/pnp-server.service.
RUN_AS = ""

# --- Logging -----------------------------------------------------------------------------
LOG_LEVEL = "INFO"  # DEBUG adds the raw XML of every exchange
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUP_COUNT = 5
