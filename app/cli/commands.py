"""Operator commands of ``python3 run.py``: ``devices``, ``users``, ``inventory``, ``images``, ``config``, ``db``.

Groups: ``devices`` (list, show, set-state, retry, reset, claim, delete),
``users`` (add, list, remove, passwd, role, token),
``inventory`` (import, list, sync, writeback), ``images`` (add, list, remove), ``config`` (render), ``db``
(upgrade, prune). Every change goes through app.ops, the same service layer as
the console and the API. Errors exit with status 1 and a one-line message.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

import click
from flask.cli import AppGroup

from app import ops as op
from app.config import get_config
from app.ops import accounts, team
from app.storage.db import get_sessions

devices = AppGroup("devices", help="List, inspect and act on devices.")
inventory = AppGroup("inventory", help="Import, sync and list the inventory (planned devices).")
images = AppGroup("images", help="The image catalogue.")
config_group = AppGroup("config", help="Day-0 configs.")
db = AppGroup("db", help="Database schema.")
users = AppGroup("users", help="Operator accounts (roles viewer, operator, admin) and their API tokens.")


def _default(value):
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds") + "Z"
    raise TypeError(type(value).__name__)


def _echo_json(data) -> None:
    click.echo(json.dumps(data, default=_default, indent=2, sort_keys=True))


def _fail(message: str) -> None:
    raise click.ClickException(message)


def _actor() -> op.Actor:
    """The CLI's actor for the history and the audit log: ``cli:<login name>``."""
    import getpass

    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return op.Actor(f"cli:{name}", "cli")


@devices.command("list")
@click.option("--state", default="", help="workflow state, e.g. ERROR")
@click.option("--lifecycle", default="", help="Planned, Unclaimed, Onboarding, Provisioned or Error")
@click.option("--stalled", is_flag=True, help="only stalled devices")
@click.option("--search", "q", default="", help="substring of serial, hostname or IP")
@click.option("--sort", default="serial", show_default=True)
@click.option("--desc", is_flag=True, help="descending order")
@click.option("--page", default=1, show_default=True)
@click.option("--per-page", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON output")
def devices_list(state, lifecycle, stalled, q, sort, desc, page, per_page, as_json):
    """List devices with lifecycle, state and progress."""
    query = op.DeviceQuery(state=state, lifecycle=lifecycle, stalled=stalled, q=q, sort=sort,
                           order="desc" if desc else "asc", page=page, per_page=per_page)
    try:
        result = op.list_devices(get_sessions(), get_config(), query)
    except op.ActionError as exc:
        _fail(str(exc))
    if as_json:
        _echo_json({"items": result.items, "total": result.total, "page": result.page,
                    "pages": result.pages, "counts": result.counts})
        return
    click.echo(f"{'SERIAL':<16} {'PID':<16} {'IP':<15} {'LIFECYCLE':<12} {'STATE':<22} "
               f"{'STEP':<6} {'VERSION':<20} LAST CONTACT")
    for d in result.items:
        version = f"{d['running_version'] or '-'}/{d['target_version'] or '-'}"
        contact = d["last_contact"].strftime("%Y-%m-%d %H:%M:%S") if d["last_contact"] else "never"
        flag = " STALLED" if d["stalled"] else ""
        click.echo(f"{d['serial_number']:<16} {d['pid'] or '':<16} {d['ip_address'] or '':<15} "
                   f"{d['lifecycle']:<12} {d['state'] or '-':<22} {d['step']:>2}/{d['total_steps']:<3} "
                   f"{version:<20} {contact}{flag}")
    click.echo(f"-- page {result.page} of {result.pages}, {result.total} matching; "
               f"stalled {result.counts['stalled']}; "
               + ", ".join(f"{k} {v}" for k, v in result.counts["lifecycle"].items()))


@devices.command("show")
@click.argument("serial")
@click.option("--events", default=30, show_default=True, help="how many events (newest first)")
@click.option("--xml", "show_xml", is_flag=True, help="also print the raw XML of the last exchanges")
@click.option("--json", "as_json", is_flag=True, help="JSON output")
def devices_show(serial, events, show_xml, as_json):
    """All fields of a device and its newest events."""
    try:
        data = op.get_device(get_sessions(), get_config(), serial, events=events)
    except op.NotFound as exc:
        _fail(str(exc))
    if as_json:
        _echo_json(data)
        return
    s = data["summary"]
    failed = f" (failed at {s['failed_state']})" if s["state"] == "ERROR" and s.get("failed_state") else ""
    click.echo(f"{serial}: {s['lifecycle']}, state {s['state']}{failed}, step {s['step']} of {s['total_steps']}"
               + (" STALLED" if s["stalled"] else ""))
    for key, value in data["fields"].items():
        if key != "script_output":
            click.echo(f"  {key:<22} {'' if value is None else value}")
    day0 = data["day0"]
    click.echo(f"  day-0 config: {day0['error'] or (day0['source'] + ' /configs/' + day0['name'])}")
    click.echo("events (newest first):")
    for e in data["events"]:
        result = "" if e["success"] is None else (" ok" if e["success"] else f" FAILED {e['error_code'] or ''}")
        click.echo(f"  {e['at']:%Y-%m-%d %H:%M:%S} {e['kind']:<8} {e['service'] or '':<14}{result} {e['message']}")
    if show_xml:
        for e in data["exchanges"]:
            click.echo(f"--- {e['at']:%Y-%m-%d %H:%M:%S} {e['kind']} {e['service'] or ''}\n{e['raw_xml']}")


def _run(action, serial: str, done: str) -> None:
    try:
        result = action()
    except op.NotFound as exc:
        _fail(str(exc))
    except op.ActionError as exc:
        _fail(str(exc))
    click.echo(done.format(serial=serial, result=result))


@devices.command("set-state")
@click.argument("serial")
@click.argument("state")
def devices_set_state(serial, state):
    """Resume SERIAL at workflow STATE (that step starts afresh)."""
    _run(lambda: op.act(get_sessions(), "resume", serial, _actor(), state=state.upper()), serial,
         "{serial} resumes at {result} at its next work-request")


@devices.command("accept-source")
@click.argument("serial")
def devices_accept_source(serial):
    """Accept the new source address SERIAL is held for (it becomes the device's address)."""
    _run(lambda: op.act(get_sessions(), "accept-source", serial, _actor()), serial,
         "{serial} now provisions from {result}")


@devices.command("retry")
@click.argument("serial")
def devices_retry(serial):
    """Retry the failed step of SERIAL now."""
    _run(lambda: op.act(get_sessions(), "retry", serial, _actor()), serial,
         "{serial} retries {result} at its next work-request")


@devices.command("reset")
@click.argument("serial")
def devices_reset(serial):
    """Start SERIAL over at step 1."""
    _run(lambda: op.act(get_sessions(), "reset", serial, _actor()), serial, "{serial} starts over at {result}")


@devices.command("claim")
@click.argument("serial")
def devices_claim(serial):
    """Add a seen SERIAL to the inventory."""
    _run(lambda: op.act(get_sessions(), "claim", serial, _actor()), serial, "{serial} claimed (new: {result})")


@devices.command("delete")
@click.argument("serial")
@click.option("--yes", is_flag=True, help="do not ask")
def devices_delete(serial, yes):
    """Forget SERIAL and its history."""
    if not yes:
        click.confirm(f"Delete {serial} and its history?", abort=True)
    _run(lambda: op.act(get_sessions(), "delete", serial, _actor()), serial, "{serial} deleted")


@inventory.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--dry-run", is_flag=True, help="validate only")
def inventory_import(csv_file, dry_run):
    """Import CSV_FILE (serial, hostname, pid, template, variables...); '-' reads stdin."""
    try:
        text = csv_file.read()
    except UnicodeDecodeError:
        _fail("the file is not UTF-8 text")
    result = op.import_inventory(get_sessions(), get_config(), text, dry_run=dry_run)
    if not result.ok:
        for error in result.errors:
            click.echo(error, err=True)
        _fail(f"{len(result.errors)} error(s): nothing imported")
    if dry_run:
        click.echo("valid: nothing written (--dry-run)")
    else:
        click.echo(f"imported: {result.created} new, {result.updated} updated")


@inventory.command("list")
def inventory_list():
    """List the inventory."""
    items, total = op.list_inventory(get_sessions(), per_page=op.MAX_PER_PAGE)
    for i in items:
        variables = " ".join(f"{k}={v}" for k, v in i["variables"].items())
        click.echo(f"{i['serial_number']:<16} {i['hostname'] or '':<20} {i['pid']:<16} "
                   f"{i['template'] or '':<20} {variables}")
    click.echo(f"-- {total} rows")


def _current_images(config):
    """The catalogue as the server would load it now: settings IMAGES + images/catalogue.json."""
    from app.config import ConfigError, merge_catalogue, resolve_catalogue

    try:
        merged = merge_catalogue(config)
    except ConfigError as exc:
        _fail(str(exc))
    return merged, resolve_catalogue(merged)


@inventory.command("sync")
@click.option("--dry-run", is_flag=True, help="show what would change; write nothing")
def inventory_sync(dry_run):
    """Sync the inventory from INVENTORY_SOURCE (NetBox or Nautobot), then send due status write-backs.

    Prints each device created, updated and removed; devices gone from the source but
    mid-provisioning are kept. Nothing changes when the source cannot be read.
    """
    from app.sot import writeback
    from app.sot.sources import SourceError, make_source
    from app.sot.sync import sync

    config = get_config()
    if config.inventory_source == "csv":
        _fail("INVENTORY_SOURCE is csv: use `inventory import FILE` (or set INVENTORY_SOURCE to netbox/nautobot)")
    try:
        source = make_source(config)
        result = sync(get_sessions(), config, source, dry_run=dry_run)
    except SourceError as exc:
        _fail(f"{exc} (nothing changed)")
    for line in result.lines():
        click.echo(line)
    if not dry_run and writeback.enabled(config):
        sent = writeback.drain(get_sessions(), config, source)
        for line in sent.failed:
            click.echo(f"write-back failed (retried later): {line}", err=True)
        if sent.done:
            click.echo(f"{sent.done} status write-back(s) sent")


@inventory.command("writeback")
def inventory_writeback():
    """Send due status write-backs to the source of truth now and show the queue."""
    from app.sot import writeback

    config = get_config()
    sent = writeback.drain(get_sessions(), config)
    click.echo(f"{sent.done} sent, {len(sent.failed)} failed, {sent.superseded} superseded")
    for line in sent.failed:
        click.echo(f"failed: {line}", err=True)
    queue = writeback.queue_summary(get_sessions())
    for row in queue["rows"]:
        click.echo(f"{row['serial_number']:<16} {row['action']:<7} {row['status']:<12} attempts {row['attempts']} "
                   f"next {row['next_try_at']:%Y-%m-%d %H:%M:%S} {row['last_error'] or ''}")
    click.echo(f"-- {queue['pending']} pending, {queue['failing']} failing")


@images.command("list")
def images_list():
    """The image catalogue: PID glob, file, version, size, md5, where the entry lives."""
    config, entries = _current_images(get_config())
    for e in entries:
        present = (config.images_dir / e.file).is_file()
        source = "catalogue" if e.file in config.catalogue_files else "settings"
        click.echo(f"{e.pid:<14} {e.file:<44} {e.version:<10} {e.size:>12} "
                   f"{e.md5 or '-':<32} {source}{'' if present else ' MISSING'}")
    if not entries:
        click.echo("(no images in the catalogue: devices keep their running image; "
                   "add one with: run.py images add FILE --pid 'C11*')")


def _copy_with_progress(source, target) -> None:
    """Copy ``source`` to ``target`` in 1 MiB blocks with a tqdm bar; ``target`` appears whole
    (written as a hidden temporary file, then renamed)."""
    import os

    from tqdm import tqdm

    tmp = target.with_name(f".{target.name}.part")
    size = source.stat().st_size
    with open(source, "rb") as src, open(tmp, "wb") as dst, \
            tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=f"copy {source.name}",
                 mininterval=0.5) as bar:
        while block := src.read(1 << 20):
            dst.write(block)
            bar.update(len(block))
    os.replace(tmp, target)


@images.command("add")
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--pid", "pid_glob", required=True, help="PID glob the image is for, e.g. 'C11*'")
@click.option("--version", "version", default="", help="version the image reports (default: from the name)")
def images_add(image, pid_glob, version):
    """Copy IMAGE into images/, compute its md5 and record it in images/catalogue.json.

    The server reads that file next to IMAGES of settings.py (settings entries
    come first); no settings edit is needed. Adding the same file again
    replaces its entry (new PID glob, version, md5).
    """
    from pathlib import Path

    from app.common.versions import normalise_version, version_from_image_name

    config, _ = _current_images(get_config())
    source = Path(image).resolve()
    version = version or version_from_image_name(source.name) or ""
    if normalise_version(version) is None:
        _fail(f"cannot tell the IOS-XE version of {source.name}: give --version, e.g. 17.12.3a")
    if source.name.startswith(".") or "/" in source.name:
        _fail(f"{source.name}: image names must not start with a dot")
    target = config.images_dir / source.name
    config.images_dir.mkdir(parents=True, exist_ok=True)
    if source != target.resolve():
        _copy_with_progress(source, target)
        click.echo(f"copied to {target}", err=True)
    md5, st = record_image(config, target, pid_glob, version)
    click.echo(f"{source.name}: {st.st_size} bytes, md5 {md5}, version {version}, PID {pid_glob}")
    click.echo(f"recorded in {config.images_dir / 'catalogue.json'}; the server uses it at its next start")
    from_settings = [e for e in config.images if e.file not in config.catalogue_files]
    shadow = [e for e in from_settings if e.file != source.name and e.pid.upper() == pid_glob.upper()]
    if source.name in {e.file for e in from_settings}:
        click.echo(f"note: settings.py IMAGES also lists {source.name}; that entry wins", err=True)
    elif shadow:
        click.echo(f"note: settings.py IMAGES entry {shadow[0].file} ({shadow[0].pid}) comes first "
                   f"for these PIDs", err=True)


def record_image(config, target, pid_glob: str, version: str):
    """Hash ``images/<target>`` (progress bar), cache the md5 and record the catalogue entry.

    Returns ``(md5, stat)``. An entry for the same file is replaced.
    """
    from app.config import file_md5, read_catalogue, write_catalogue

    md5 = file_md5(target, progress=True)
    st = target.stat()
    _record_md5(config, target.name, st, md5)
    entries = [e for e in read_catalogue(config) if e["file"] != target.name]
    entries.append({"pid": pid_glob, "file": target.name, "version": version, "md5": md5, "size": st.st_size})
    write_catalogue(config, entries)
    return md5, st


def _record_md5(config, name: str, st, md5: str) -> None:
    """Put a freshly computed md5 in images/.md5-cache.json (the server then does not hash again)."""
    from app.config import MD5_CACHE_NAME

    path = config.images_dir / MD5_CACHE_NAME
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    cache[name] = {"size": st.st_size, "mtime": st.st_mtime, "md5": md5}
    path.write_text(json.dumps(cache, indent=1, sort_keys=True))


@images.command("remove")
@click.argument("name")
@click.option("--delete-file", is_flag=True, help="also delete images/NAME")
def images_remove(name, delete_file):
    """Remove NAME's entry from images/catalogue.json (entries of settings.py stay: edit that file)."""
    from app.config import read_catalogue, write_catalogue

    config, _ = _current_images(get_config())
    entries = read_catalogue(config)
    kept = [e for e in entries if e["file"] != name]
    if len(kept) == len(entries):
        if name in {e.file for e in config.images}:
            _fail(f"{name} is in IMAGES of settings.py, not in images/catalogue.json: edit settings.py")
        _fail(f"{name} is not in the catalogue (run.py images list)")
    write_catalogue(config, kept)
    click.echo(f"{name} removed from the catalogue")
    if delete_file:
        path = config.images_dir / name
        if path.is_file():
            path.unlink()
            click.echo(f"deleted {path}")


@config_group.command("render")
@click.argument("serial")
def config_render(serial):
    """Print the day-0 config SERIAL gets (static, template or default)."""
    from app.files.day0 import Day0Error

    try:
        day0 = op.render_day0(get_sessions(), get_config(), serial)
    except Day0Error as exc:
        _fail(f"{serial}: {exc}")
    click.echo(f"! {day0.source}: /configs/{day0.name} md5 {day0.md5}", err=True)
    sys.stdout.write(day0.text)


@db.command("upgrade")
def db_upgrade():
    """Apply the database migrations."""
    from app.storage.migrate import upgrade

    config = get_config()
    upgrade(config.sqlalchemy_url)
    click.echo(f"database {config.database_label} is up to date")


def _password(given: str | None, prompt: str = "Password") -> str:
    if given:
        return given
    return click.prompt(prompt, hide_input=True, confirmation_prompt=True)


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(accounts.ROLES), default="operator", show_default=True)
@click.option("--password", envvar="PNP_NEW_PASSWORD", help="(default: asked; or PNP_NEW_PASSWORD)")
def users_add(name, role, password):
    """Add user NAME with a role and a password (asked twice unless given)."""
    try:
        team.add_user(get_sessions(), _actor(), name, role, _password(password))
    except op.ActionError as exc:
        _fail(str(exc))
    click.echo(f"user {name} added ({role})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output")
def users_list(as_json):
    """List users with role, open sessions and live API tokens."""
    accounts.ensure_env_admin(get_sessions(), get_config())
    rows = accounts.list_users(get_sessions())
    if as_json:
        _echo_json(rows)
        return
    click.echo(f"{'USER':<24} {'ROLE':<9} {'SESSIONS':>8} {'TOKENS':>6}  PASSWORD CHANGED")
    for u in rows:
        click.echo(f"{u['name']:<24} {u['role']:<9} {u['sessions']:>8} {u['tokens']:>6}  "
                   f"{u['password_changed_at']:%Y-%m-%d %H:%M:%S}")
    click.echo(f"-- {len(rows)} users")


@users.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="do not ask")
def users_remove(name, yes):
    """Remove user NAME: their sessions and tokens end at once (the audit log keeps the name)."""
    if not yes:
        click.confirm(f"Remove user {name}?", abort=True)
    try:
        team.remove_user(get_sessions(), _actor(), name)
    except (op.NotFound, op.ActionError) as exc:
        _fail(str(exc))
    click.echo(f"user {name} removed")


@users.command("passwd")
@click.argument("name")
@click.option("--password", envvar="PNP_NEW_PASSWORD", help="(default: asked; or PNP_NEW_PASSWORD)")
def users_passwd(name, password):
    """Set the password of NAME; every session of NAME ends."""
    try:
        team.set_password(get_sessions(), _actor(), name, _password(password, "New password"))
    except (op.NotFound, op.ActionError) as exc:
        _fail(str(exc))
    click.echo(f"password of {name} changed; their sessions ended")


@users.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(accounts.ROLES))
def users_role(name, role):
    """Give NAME another role."""
    try:
        team.set_role(get_sessions(), _actor(), name, role)
    except (op.NotFound, op.ActionError) as exc:
        _fail(str(exc))
    click.echo(f"{name} is now {role}")


@users.command("token")
@click.argument("name")
@click.argument("token_name")
def users_token(name, token_name):
    """Create an API token TOKEN_NAME for NAME; the secret is printed once."""
    try:
        secret, _info = team.create_token(get_sessions(), _actor(), name, token_name)
    except (op.NotFound, op.ActionError) as exc:
        _fail(str(exc))
    click.echo(secret)


@db.command("prune")
def db_prune():
    """Expire devices never seen past first contact and delete old history (UNSEEN_DEVICE_EXPIRY,
    EVENT_RETENTION); the server also does this every PRUNE_INTERVAL seconds."""
    from flask import current_app

    config = get_config()
    result = op.prune(get_sessions(), config, current_app.extensions["pnp_prune"].juniper_known)
    click.echo(f"expired {result.devices} never-provisioned devices, deleted {result.events} history events")


GROUPS = (devices, inventory, images, config_group, db, users)

