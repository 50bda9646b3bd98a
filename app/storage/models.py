"""Database models (SQLAlchemy 2.0, typed): DeviceState, DeviceEvent and InventoryItem.

The ``device_state`` row is the only truth about a device: no process keeps
device state between requests. Operators may edit it with SQL, e.g.
``UPDATE device_state SET state='RUN_EVENT_MANAGER' WHERE serial_number='FGL2548L0AW'``.
Times are naive UTC. The schema is managed by Alembic (``migrations/``). Values that do not
fit a column (length, integer range) are cut by app/storage/fit.py from these definitions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: A serial number key: compared exactly (binary collation on MariaDB, migration 0009), so
#: serials that differ in case or accents are different devices, as on the device itself.
SerialKey = String(64).with_variant(mysql.VARCHAR(64, charset="utf8mb4", collation="utf8mb4_bin"),
                                    "mysql", "mariadb")

#: TEXT that holds more than 64 kB on MariaDB (raw XML, script output).
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")

#: Character set of every table on MariaDB/MySQL: utf8mb4 holds any text a device or the
#: server writes (``→`` in history lines, non-ASCII hostnames), whatever the server's or
#: the database's default is (latin1 upstream before 11.6). Migration 0006 converts
#: existing tables; app/storage/charset.py checks at start. SQLite text is always UTF-8.
CHARSET = "utf8mb4"
COLLATION = "utf8mb4_unicode_ci"
TABLE_ARGS = {"mysql_charset": CHARSET, "mysql_collate": COLLATION}


class Base(DeclarativeBase):
    """Declarative base of all models."""


class DeviceState(Base):
    """One provisioned device, keyed by serial number (SN of the UDI).

    Juniper ZTP devices (``vendor='juniper'``) are keyed by the MAC of their ZTP
    interface: ``serial_number`` = ``mac_address`` = ``aa:bb:cc:dd:ee:ff``;
    their ``state`` is one of app.ztp.service's ZTP_* names, not a PnP state.

    ``state`` holds a workflow state name (app.pnp.workflow.State), never an
    index. ``pending_service``/``pending_correlator`` describe the job sent and
    not yet answered; a WORK-RESPONSE is accepted only when both match.
    """

    __tablename__ = "device_state"
    #: the dashboard's counts, stalled filter and "attention" order (migration 0012)
    __table_args__ = (Index("ix_device_state_state_last_contact", "state", "last_contact"), TABLE_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Cisco SNs match app.pnp.protocol.SERIAL_PATTERN (no ':'), Juniper keys are MACs with ':':
    # the two identities cannot share a key.
    serial_number: Mapped[str] = mapped_column(SerialKey, unique=True)
    # cisco (PnP, keyed by the SN of the UDI) or juniper (ZTP, keyed by MAC: serial_number
    # holds the MAC aa:bb:cc:dd:ee:ff, pid the model, udi the PID/SN from the VCI).
    vendor: Mapped[str] = mapped_column(String(16), default="cisco", server_default="cisco")
    mac_address: Mapped[str | None] = mapped_column(String(17), index=True)  # aa:bb:cc:dd:ee:ff
    vci: Mapped[str | None] = mapped_column(String(255))  # DHCP option 60 (Juniper-<model>[-<serial>])
    pid: Mapped[str] = mapped_column(String(64), default="", index=True)  # migration 0012
    vid: Mapped[str] = mapped_column(String(16), default="")
    udi: Mapped[str] = mapped_column(String(255), default="")
    hostname: Mapped[str | None] = mapped_column(String(255))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    last_contact: Mapped[datetime] = mapped_column(DateTime)

    running_version: Mapped[str | None] = mapped_column(String(64), index=True)  # migration 0012
    image_file: Mapped[str | None] = mapped_column(String(255))
    boot_mode: Mapped[str | None] = mapped_column(String(16))  # bundle | install
    config_register: Mapped[str | None] = mapped_column(String(16))
    target_image: Mapped[str | None] = mapped_column(String(255))
    target_version: Mapped[str | None] = mapped_column(String(64))
    # Free space as the device reports it; a negative number is stored as 0 (app/storage/fit.py).
    bootflash_free: Mapped[int | None] = mapped_column(BigInteger, info={"min": 0})
    image_installs: Mapped[int] = mapped_column(Integer, default=0)
    reload_requested_at: Mapped[datetime | None] = mapped_column(DateTime)

    tarball_transferred: Mapped[bool] = mapped_column(Boolean, default=False)
    script_transferred: Mapped[bool] = mapped_column(Boolean, default=False)
    configured: Mapped[bool] = mapped_column(Boolean, default=False)
    # Juniper ZTP: when the device last fetched its image completely (None = never).
    image_fetched_at: Mapped[datetime | None] = mapped_column(DateTime)
    guestshell_state: Mapped[str | None] = mapped_column(String(32))
    guestshell_checks: Mapped[int] = mapped_column(Integer, default=0)
    script_output: Mapped[str | None] = mapped_column(LongText)

    state: Mapped[str] = mapped_column(String(32), index=True)
    # The state the workflow itself last wrote: differs from ``state`` after an
    # operator edit, which makes the next request start the edited step afresh.
    workflow_state: Mapped[str | None] = mapped_column(String(32))
    pending_service: Mapped[str | None] = mapped_column(String(32))
    pending_correlator: Mapped[str | None] = mapped_column(String(255))
    pending_since: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    retry_after: Mapped[datetime | None] = mapped_column(DateTime)
    last_error_code: Mapped[str | None] = mapped_column(String(64))
    last_error_message: Mapped[str | None] = mapped_column(Text)
    # The step a device in ERROR stopped in (a retry resumes it); None otherwise.
    failed_state: Mapped[str | None] = mapped_column(String(32))
    # Unknown outcomes in a row of the current step (no response: restart, lost message);
    # bounded by MAX_UNKNOWN_OUTCOMES, never counted in ``attempts``.
    unknown_outcomes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The pending job is a check of whether the step's last job took effect.
    verifying: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Why a device is in ERROR: permanent (waits for an operator), transient or unknown
    # (retried automatically at ``auto_retry_at``, ERROR_RETRY_AFTER / ERROR_RETRY_ROUNDS).
    error_kind: Mapped[str | None] = mapped_column(String(16))
    auto_retry_at: Mapped[datetime | None] = mapped_column(DateTime)
    auto_retry_rounds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The address a message came from while the flow had started from ``ip_address``: the
    # device is held (not advanced) until an operator accepts it (app/pnp/source.py).
    source_hold: Mapped[str | None] = mapped_column(String(45))

    events: Mapped[list[DeviceEvent]] = relationship(
        back_populates="device", cascade="all, delete-orphan", passive_deletes=True,
        order_by="DeviceEvent.id")

    def __repr__(self) -> str:
        return f"<DeviceState {self.serial_number} {self.state}>"


class DeviceEvent(Base):
    """One line of a device's history: a job sent, a response, a state change, an error.

    ``kind`` is job, response, state, error, info, reload, fetch (a Juniper ZTP download)
    or clamped (a value that did not fit its column was stored cut, app/storage/fit.py).
    ``raw_xml`` holds the message for job and response events (credentials redacted).
    """

    __tablename__ = "device_event"
    __table_args__ = (Index("ix_device_event_device_id_id", "device_id", "id"),
                      Index("ix_device_event_at", "at"), TABLE_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device_state.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(16))
    service: Mapped[str | None] = mapped_column(String(32))
    correlator: Mapped[str | None] = mapped_column(String(255))
    success: Mapped[bool | None] = mapped_column(Boolean)
    error_code: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    raw_xml: Mapped[str | None] = mapped_column(LongText)

    device: Mapped[DeviceState] = relationship(back_populates="events")


class InventoryItem(Base):
    """One planned device of the operator's inventory, keyed by serial number (SN).

    Imported from CSV (serial, hostname, pid, template, any further columns as
    ``variables``). A serial in the inventory is *claimed*; ``template`` names a
    Jinja2 day-0 template under ``configs/`` rendered from ``variables``.
    """

    __tablename__ = "inventory"
    __table_args__ = TABLE_ARGS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial_number: Mapped[str] = mapped_column(SerialKey, unique=True)
    hostname: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[str] = mapped_column(String(64), default="")
    template: Mapped[str | None] = mapped_column(String(255), index=True)  # migration 0012
    variables: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    # Where the row comes from (csv, netbox, nautobot) and what the source of truth says
    # (app/sot/sync.py); a sync only ever changes or removes rows of its own source.
    source: Mapped[str] = mapped_column(String(16), default="csv", server_default="csv")
    sot_id: Mapped[str | None] = mapped_column(String(64))
    vendor: Mapped[str | None] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(64))
    site: Mapped[str | None] = mapped_column(String(100))
    sot_status: Mapped[str | None] = mapped_column(String(50))
    mac_address: Mapped[str | None] = mapped_column(String(17), index=True)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    image: Mapped[str | None] = mapped_column(String(255))  # per-device image override
    # The day-0 config the source of truth rendered itself (NetBox render-config), else None.
    rendered_config: Mapped[str | None] = mapped_column(LongText)

    def __repr__(self) -> str:
        return f"<InventoryItem {self.serial_number} {self.template}>"


# --- operator accounts, sessions, tokens, shared counters, audit ------------------------------


class OperatorUser(Base):
    """An operator account of the console and API.

    ``role`` is viewer (read-only), operator (device actions) or admin (users,
    audit, settings, images). ``password_hash`` is an argon2id hash (argon2-cffi).
    """

    __tablename__ = "operator_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    password_changed_at: Mapped[datetime] = mapped_column(DateTime)

    def __repr__(self) -> str:
        return f"<OperatorUser {self.name} {self.role}>"


class OperatorSession(Base):
    """A server-side login session: the browser's cookie carries only the random id,
    stored here as its SHA-256 (``id_hash``). Deleting the row ends the session at once."""

    __tablename__ = "operator_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("operator_user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)
    address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))


class ApiToken(Base):
    """A personal API token: ``pnp_<prefix>_<secret>``, stored as its SHA-256 only."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("operator_user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class RateCounter(Base):
    """One fixed-window counter shared by every worker and host (failed logins, token use).

    ``key`` names what is counted (``login-addr:192.0.2.7``), ``window_no`` the
    window's start in seconds since the epoch divided by its length.
    """

    __tablename__ = "rate_counter"

    key: Mapped[str] = mapped_column(String(191), primary_key=True)
    window_no: Mapped[int] = mapped_column(BigInteger)
    hits: Mapped[int] = mapped_column(Integer)


class AuditEntry(Base):
    """Who did what, on which device, from where: logins, logouts, every operator action.

    ``actor`` is the user name as it was (kept after the user is removed),
    ``target`` the device serial (kept after the device is deleted).
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    via: Mapped[str] = mapped_column(String(16))  # session, token, cli, env-token
    action: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(45))
    success: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str | None] = mapped_column(Text)


class Webhook(Base):
    """A webhook: where to POST which events, in which body format, signed with ``secret``.

    ``events`` is a comma list of device_error, device_finished, device_stalled,
    sync_failure; ``preset`` is json, slack or teams.
    """

    __tablename__ = "webhook"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(1024))
    events: Mapped[str] = mapped_column(String(255))
    preset: Mapped[str] = mapped_column(String(16))
    secret: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class WebhookDelivery(Base):
    """One queued POST of one event to one webhook: pending until delivered, retried with
    backoff, failed after the last attempt. ``dedupe_key`` stops a second copy of the same
    event (a stalled device is reported once per silence)."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
                      Index("uq_webhook_delivery_dedupe", "webhook_id", "dedupe_key", unique=True))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhook.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    serial: Mapped[str | None] = mapped_column(String(64))
    dedupe_key: Mapped[str | None] = mapped_column(String(191))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)


class SotChange(Base):
    """One change a source-of-truth sync made to the inventory ("planned in NetBox", "hostname changed")."""

    __tablename__ = "sot_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial_number: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    source: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)


class SotWriteback(Base):
    """One status write-back to the source of truth, queued until it succeeds (app/sot/writeback.py).

    ``action`` is ``status`` (set ``status`` and write ``note`` as a journal
    entry / note) or ``create`` (create the unknown serial with ``status``).
    A worker claims a row by setting ``claimed_until``; ``done_at`` is set on
    success; a failure stores ``last_error`` and moves ``next_try_at``.
    """

    __tablename__ = "sot_writeback"
    __table_args__ = (Index("ix_sot_writeback_done_next", "done_at", "next_try_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial_number: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(16))
    sot_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(50))
    note: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    next_try_at: Mapped[datetime] = mapped_column(DateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime)
    done_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
