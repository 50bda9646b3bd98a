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
PORT = 80  # the HTTP port this server listens on (and devices use: option 43 J token)
PUBLIC_PORT = 0  # with nginx in front: the port devices use (e.g. 80) while PORT is 8080; 0 = PORT
# Listen address: loopback until you say otherwise. Devices need "0.0.0.0" (or the lab
# interface's address); then an admin password must have 12+ characters and not be an
# example from the documentation, or the server refuses to start.
BIND = "127.0.0.1"

# --- Server processes ---------------------------------------------------------
WORKERS = 4  # gunicorn worker processes
# gevent (default): one greenlet per connection, so slow or idle clients (a header sent one
# byte at a time, an image read at 1 KiB/s) hold no thread, and an unfinished request header
# is cut after 5 s. gthread: THREADS threads per worker, each slow client holds one
# (docs/slow-clients.md has the measurements).
WORKER_CLASS = "gevent"
WORKER_CONNECTIONS = 1000  # gevent: open connections per worker
THREADS = 8  # gthread only: threads per worker (image downloads hold a thread each)
# Hand file downloads to nginx with X-Accel-Redirect (see deploy/nginx.conf).
# Empty = this server streams the files itself.
X_ACCEL_REDIRECT_PREFIX = ""
# Number of reverse proxies (nginx) in front of the server; their X-Forwarded-For
# then gives the device's source IP. 0 = devices connect directly.
PROXY_HOPS = 0
# Who may act as a device: CIDRs allowed on /pnp/*, /ztp_fetch, /images, /configs and /files
# (403 for anyone else; the source address is X-Forwarded-For only with PROXY_HOPS).
# Empty = any host (the start banner warns). e.g. ["192.0.2.0/24", "2001:db8:10::/48"]
DEVICE_NETWORKS = []
# A serial whose flow started from one address and is then driven from another is held
# (backoff, flagged in the history and on the dashboard) until an operator accepts the new
# address. True = no hold (devices whose DHCP address changes mid-flow).
ALLOW_SOURCE_CHANGE = False

# --- Database ----------------------------------------------------------------
# Empty = the embedded SQLite file pnp.sqlite3 in the project folder.
# MariaDB: "mysql://pnp@127.0.0.1:3306/pnp" (password from PNP_DB_PASSWORD): mysqlclient (C) when
# installed, else PyMySQL; "mysql+pymysql://…" / "mysql+mysqldb://…" name the driver (README "MariaDB").
DATABASE_URL = ""
# MariaDB Galera cluster only (docs/scale-out.md): causality checks per session, so that a
# read on one node waits for what other nodes committed before it. 1 = reads (the PnP path
# starts with SELECT ... FOR UPDATE). 0 = off (one server, or one writer node behind HAProxy
# without failover).
DB_WSREP_SYNC_WAIT = 0
# MariaDB connections per worker: DB_POOL_SIZE kept open (0 = THREADS + 2), DB_MAX_OVERFLOW
# more at a peak; a request that waits DB_POOL_TIMEOUT seconds for one is answered with a
# backoff. WORKERS x (pool + overflow) must stay <= DB_MAX_CONNECTIONS (start refused
# otherwise), itself below MariaDB's max_connections (151 by default; README "MariaDB").
DB_POOL_SIZE = 0
DB_MAX_OVERFLOW = 10
DB_POOL_TIMEOUT = 10
DB_MAX_CONNECTIONS = 150

# --- Image catalogue ------------------------------------------------------------
# One entry per platform. "pid" is a glob matched against the device PID
# (first match wins). "file" lives in images/. "version" is the version
# IOS-XE reports once the image runs (17.12.3a for ...17.12.03a.SPA.bin).
# "md5" and "size" may be left out: they are computed once and cached in
# images/.md5-cache.json by file size and mtime.
# ``python3 run.py images add FILE --pid 'C11*'`` records entries in images/catalogue.json
# instead (no edit here); entries below come first and win for the same file.
IMAGES = [
    # {"pid": "C11*", "file": "c1100-universalk9.17.12.03a.SPA.bin", "version": "17.12.3a"},
]

# --- Files for the guestshell steps ----------------------------------------------
# The tarball must be the one the EEM applet of configs/default.cfg installs (the server
# refuses to start otherwise). Empty = steps 5 (copy) and 10 (EEM applet) are skipped.
GUESTSHELL_TARBALL = "guestshell.17.09.01a.tar"  # in files/
# Empty = steps 6 (copy) and 12 (run) are skipped; with no tarball either, step 11 too.
PYTHON_SCRIPT = "pxs.py"  # in files/, copied to bootflash:guest-share/
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
# A job whose outcome is unknown (no response: a restart, a lost message) is checked, not
# counted as a failure; after this many unknown outcomes in a row of one step: ERROR.
MAX_UNKNOWN_OUTCOMES = 10
# ERROR reached through transient errors or unknown outcomes is retried automatically:
ERROR_RETRY_AFTER = 1800  # seconds after the ERROR
ERROR_RETRY_ROUNDS = 3  # how many times (0 = never: every ERROR waits for an operator)
# A second work-request this many seconds after a job was sent (a copy, or the device
# retrying) gets a short backoff and changes nothing.
DUPLICATE_WINDOW = 5

# --- Security ----------------------------------------------------------------------
# Day-0 configs only through signed, expiring URLs bound to the serial number
# (plain /configs/<file> then answers 403). The secret comes from the
# environment, never from this file: PNP_CONFIG_URL_SECRET=$(openssl rand -hex 32)
SIGNED_CONFIG_URLS = False
CONFIG_URL_MAX_AGE = 900  # seconds a signed config URL stays valid
# Juniper: with PNP_ZTP_TOKEN_SECRET in the environment (16+ characters), /ztp_fetch configs
# need the per-device token that "run.py dhcp" writes into each inventory device's
# reservation (option 43 sub-option 1); a known MAC alone gets 403. Never set it here.
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
LOG_FORMAT = "text"  # "json": one JSON object a line (for Loki, Elasticsearch…)
# Backoff polls of a device become one line every this many seconds (0: every poll; DEBUG: all).
LOG_BACKOFF_SUMMARY = 300

# --- Juniper ZTP (/ztp_fetch/<mode>/<vci>/<mac>, see docs/dhcp.md) -------------------------
# Known Juniper models, lower case as Junos sends them in option 60 (Juniper-<model>[-<serial>]),
# mapped to the OFFICIAL Juniper image file name in images/ ("" = config only, no image).
# Non-standard image names make installs fail on some models. The longest matching model wins.
JUNIPER_MODELS = {
    # "ex4300-48p": "jinstall-ex-4300-21.4R3.15-signed.tgz",
    # "ex2300-c-12p": "junos-arm-32-21.4R3.15.tgz",
    # "mx204": "junos-vmhost-install-mx-x86-64-23.4R2.tgz",
}
# Inventory CSV (header: mac,ip,hostname,serial,pid,vendor,model,template,<any variable>...).
# /ztp_fetch serves configs/juniper/<aa-bb-cc-dd-ee-ff>.conf, else renders the row's template
# (a Jinja2 file in configs/juniper/) with the row's columns; the DHCP helper reserves ip/hostname.
JUNIPER_INVENTORY = "configs/juniper/inventory.csv"

# --- DHCP helper (python3 run.py dhcp kea|dhcpd|push, see docs/dhcp.md) ---------------------------
DHCP_SUBNET = ""  # the subnet the devices boot in, e.g. "192.0.2.0/24"
DHCP_SUBNET_ID = 1  # Kea subnet id (explicit ids are mandatory from Kea 2.6)
DHCP_POOL = ""  # dynamic range "first-last", e.g. "192.0.2.100-192.0.2.199"
DHCP_ROUTERS = []  # option 3, e.g. ["192.0.2.1"]
DHCP_DNS = []  # option 6
DHCP_DOMAIN = ""  # option 15
DHCP_NTP = []  # option 42
DHCP_INVENTORY = ""  # reservations CSV; "" = JUNIPER_INVENTORY (rows with mac and ip/hostname)
# Cisco PnP: option 60 "ciscopnp" gets option 43 "5A1N;B2;K4;I<SERVER_IP>;J<PORT>".
DHCP_CISCO = True
# Per-PID classes on option 124: "C9300" or {"pid": "C11", "port": 8080, "https": True, ...}
# (keys of a PnP server: ip, port, https, https_port, trustpool_url, ntp, hostname, debug).
DHCP_CISCO_PIDS = []
DHCP_PNP_HTTPS = False  # K5: HTTPS on DHCP_PNP_HTTPS_PORT; needs the two settings below
DHCP_PNP_HTTPS_PORT = 443
DHCP_PNP_TRUSTPOOL_URL = ""  # T token: URL of the CA bundle
DHCP_PNP_NTP = ""  # Z token: NTP server, so the agent can check certificate dates
# Juniper ZTP: option 150 + option 43 sub-options 0 (image), 1 (config), 3 (transfer mode), 5 (port).
DHCP_JUNIPER = True
JUNIPER_FILE_SERVER = ""  # option 150; "" = SERVER_IP
JUNIPER_FILE_PORT = 0  # sub-option 5; 0 = PORT
JUNIPER_TRANSFER_MODE = "http"  # http, https (port: HTTPS_PORT, else 443), tftp or ftp (need the server below)
JUNIPER_TFTP_SERVER = ""  # the TFTP server that serves ztp_fetch/... for "tftp" (this server does not)
JUNIPER_FTP_SERVER = ""  # the FTP server for "ftp"
JUNIPER_SERVER_OPTIONS = [150]  # announce the file server in 150 and/or 66; add 67 for the config name in option 67
# Per-model Juniper sub-options: image_type (2, e.g. "symlink"), alt_image (4), ftp_timeout (7, s),
# proxy (8), config_file (1: a static config or script instead of the per-MAC one). Per-device: the
# inventory columns image, config_file, image_type, alt_image, ftp_timeout, proxy, syslog, ntp, subnet/site.
JUNIPER_MODEL_OPTIONS = {}
# Several subnets (relayed VLANs, sites): a list replacing DHCP_SUBNET/DHCP_SUBNET_ID/DHCP_POOL/DHCP_ROUTERS;
# DHCP_DNS/DHCP_DOMAIN/DHCP_NTP/DHCP_SYSLOG are the defaults of each entry. Keys: subnet, id, pool ("a-b")
# or pools (list), routers, dns, domain, ntp, syslog, relay (giaddr list), interface, site. Example:
# DHCP_SUBNETS = [{"subnet": "192.0.2.0/24", "id": 1, "pool": "192.0.2.100-192.0.2.199",
#                  "routers": ["192.0.2.1"], "relay": ["192.0.2.1"], "site": "lab"}, ...]
DHCP_SUBNETS = []
DHCP_SYSLOG = []  # option 7: where Junos ZTP reports its progress
KEA_API_USER = ""  # Kea Control Agent basic auth for "dhcp push --socket http://..."; password: PNP_KEA_API_PASSWORD
KEA_CONTROL_SOCKET = "/run/kea/kea4-ctrl-socket"  # for "dhcp push" and the generated control-socket
KEA_HOOKS_DIR = ""  # where libdhcp_flex_option.so lives; "" = detect

# --- Operator console (/dashboard, /devices, /api/v1, CLI) ----------------------------
# Secrets never need to be written here: set them in the environment instead
# (PNP_ADMIN_PASSWORD, PNP_ADMIN_TOKEN, PNP_SECRET_KEY). With no ADMIN_PASSWORD
# and no ADMIN_TOKEN the admin pages and the API stay locked (the CLI still works).
ADMIN_USER = "admin"  # the login name of the operator account
# ADMIN_PASSWORD = ""  # the operator's login password (better: PNP_ADMIN_PASSWORD)
# ADMIN_TOKEN = ""  # bearer token for /api/v1 (better: PNP_ADMIN_TOKEN)
# SECRET_KEY = ""  # signs session cookies; empty = derived from ADMIN_PASSWORD
DASHBOARD_PUBLIC = False  # True: the read-only /dashboard is shown without a login
STALLED_AFTER = 900  # seconds without contact after which a device counts as stalled

# --- Growth bounds (python3 run.py db prune; also automatic) ------------------------------
# Rows of devices never seen past first contact (still in the first step) and not in the
# inventory expire after this many seconds; unknown MACs on /ztp_fetch get no row at all.
UNSEEN_DEVICE_EXPIRY = 7 * 86400
EVENT_RETENTION = 180 * 86400  # seconds of history kept (device summaries stay); 0 = forever
# The raw XML kept in the history (device_event.raw_xml, redacted): "jobs" = every job sent, every
# response that reports a failure or a fault, and the first device-info a device answers;
# "all" = every response too (about 2.5x the history's bytes per provisioned device,
# BENCHMARKS.md "Per-message cost"). Every message is still a history line with its summary.
HISTORY_RAW_XML = "jobs"
PRUNE_INTERVAL = 3600  # seconds between automatic prunes in each worker; 0 = only run.py db prune
PAGE_SIZE = 50  # devices per dashboard page (the API takes ?per_page= up to 500)
# True: a serial that is not in the inventory is told to wait (backoff) until an
# operator claims it (dashboard "Claim", API POST /api/v1/devices/<SN>/claim,
# CLI "devices claim"). False: unknown serials are provisioned with default.cfg.
REQUIRE_CLAIM = False
# Failed logins allowed per (user, client address), per address (all users, e.g. a shared NAT)
# and per user (all addresses); then 429 for that pair/address/user until the window passes.
LOGIN_RATE_LIMIT = "10 per minute"
LOGIN_ADDRESS_RATE_LIMIT = "60 per minute"
LOGIN_USER_RATE_LIMIT = "30 per minute"
# Requests per personal API token (bad tokens count per address with LOGIN_ADDRESS_RATE_LIMIT).
API_RATE_LIMIT = "600 per minute"
# Where those counts live: "database" (the server's database: shared by every worker and host),
# "redis://127.0.0.1:6379" (shared by every server using that Redis), "memory://" (per gunicorn worker).
RATELIMIT_STORAGE_URI = "database"
# Key prefix of those counters in Redis: deployments sharing one Redis (not one database) differ here.
RATELIMIT_KEY_PREFIX = "pnp"
# Login sessions (kept in the database): seconds idle, and seconds after login, until they end.
SESSION_IDLE_TIMEOUT = 3600
SESSION_MAX_AGE = 12 * 3600
# Webhooks (/webhooks): a thread per server process delivers the queue; retries after these
# seconds, at most WEBHOOK_MAX_ATTEMPTS tries; seconds per POST.
WEBHOOK_DISPATCHER = True
WEBHOOK_BACKOFF = [10, 30, 60, 300, 900, 3600]
WEBHOOK_MAX_ATTEMPTS = 8
WEBHOOK_TIMEOUT = 10

# --- Source of truth: NetBox or Nautobot (docs/source-of-truth.md) -------------------
INVENTORY_SOURCE = "csv"  # csv (inventory import), netbox or nautobot
SOT_URL = ""  # e.g. "https://netbox.example.net"
# SOT_TOKEN = ""  # API token (better: PNP_SOT_TOKEN): read devices/IPAM, write status and journal/notes
SOT_VERIFY_TLS = True  # verify the source's certificate (keep it on)
SOT_CA_BUNDLE = ""  # CA file for that certificate; "" = system CAs
SOT_TIMEOUT = 10  # seconds per API call
SOT_SITES = []  # NetBox site slugs / Nautobot location names; [] = all
SOT_TAGS = []  # tag slugs (NetBox) / names (Nautobot)
SOT_STATUSES = []  # e.g. ["planned", "staged", "active", "failed"]; [] = all
SOT_ROLES = []  # device role slugs / names
SOT_FIELD_MAP = {}  # override the field map, e.g. {"pid": "custom_fields.cisco_pid|device_type.model"}
SOT_PROVISIONING_INTERFACE = ""  # interface whose MAC is reserved; "" = the mgmt-only one, else the first with a MAC
SOT_TEMPLATE = ""  # day-0 Jinja2 template (configs/) for devices without the pnp_template custom field
SOT_RENDER_CONFIG = []  # device types / tags whose day-0 the source renders itself (NetBox render-config)
# SOT_WEBHOOK_SECRET = ""  # HMAC secret of the webhook (better: PNP_SOT_WEBHOOK_SECRET)
SOT_STATUS_FIRST_CONTACT = ""  # status written at first contact, e.g. "staged"; "" = none
SOT_STATUS_FINISHED = ""  # e.g. "active" (with a journal entry / note)
SOT_STATUS_FAILED = ""  # e.g. "failed" (with the error)
SOT_UNKNOWN_STATUS = ""  # with REQUIRE_CLAIM: create unknown serials in the source with this status
SOT_UNKNOWN_SITE = ""  # site / location of those created devices
SOT_UNKNOWN_ROLE = ""  # role of those created devices
SOT_RETRY_BACKOFF = 60  # seconds before a failed write-back is retried (doubling, up to 32x)
SOT_DHCP_PUSH = False  # a webhook also pushes the reservations to the Kea at KEA_CONTROL_SOCKET
