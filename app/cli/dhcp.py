"""``python3 run.py dhcp ...``: the DHCP helper driven by settings.py and the inventory (CSV or source of truth).

    python3 run.py dhcp kea   [--inventory FILE] [--merge kea-dhcp4.conf [--diff] [--dry-run]] [--out FILE]
    python3 run.py dhcp dhcpd [--inventory FILE] [--merge dhcpd.conf [--diff] [--dry-run]] [--out FILE]
    python3 run.py dhcp push  [--socket PATH|URL] [--dry-run] [--diff]

:func:`spec_from_config` (app/ops/dhcp.py) turns a Config (``DHCP_*``, ``JUNIPER_*``,
``SERVER_IP``/``PORT``) and inventory rows into the :class:`app.dhcp.DhcpSpec`
the generators of app.dhcp take; the commands print or write their output.
Errors (incomplete settings, bad inventory, Kea refusing the config) end the
command with a one-line message and exit code 1 (2 for usage errors).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from app.config import Config
from app.dhcp import (
    DhcpdOptions,
    DhcpSpec,
    KeaControl,
    KeaError,
    KeaOptions,
    dhcpd_config,
    dhcpd_diff,
    dhcpd_merge,
    kea_config,
    kea_diff,
    kea_dumps,
    kea_loads,
    kea_merge,
    kea_push,
)
from app.ops.dhcp import inventory_devices, spec_from_config
from app.sot.sources import SourceError, make_source, reservation_rows
from app.ztp.juniper import read_inventory_csv

__all__ = ["dhcp", "inventory_devices", "spec_from_config"]  # the last two live in app/ops/dhcp.py


def _inventory_path(config: Config, option: str | None) -> Path:
    if option:
        return Path(option)
    return config.root / (config.dhcp_inventory or config.juniper_inventory)


def _spec(config: Config, inventory: str | None) -> DhcpSpec:
    """The spec with reservations from ``--inventory``, else from INVENTORY_SOURCE (the CSV file, or the
    primary IPv4 + provisioning MAC of each device in NetBox/Nautobot)."""
    path = _inventory_path(config, inventory)
    if inventory and not path.is_file():
        raise click.ClickException(f"inventory {path} not found")
    try:
        if inventory or config.inventory_source == "csv":
            spec = spec_from_config(config, read_inventory_csv(path))
        else:
            spec = spec_from_config(config, reservation_rows(make_source(config)))
    except (ValueError, SourceError) as exc:
        raise click.ClickException(str(exc)) from None
    for warning in spec.warnings:
        click.echo(f"warning: {warning}", err=True)
    return spec


def _write(text: str, out: str | None) -> None:
    if out:
        Path(out).write_text(text)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)


def _report(diff: str, show_diff: bool, dry_run: bool, what: str) -> None:
    """After a merge: the diff (stdout with --dry-run, else stderr) and a one-line summary on stderr."""
    if show_diff and diff:
        click.echo(diff, nl=False, err=not dry_run)
    verb = "would change" if dry_run else "changes"
    lines = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    click.echo(f"{what}: {verb} {len(lines)} line(s)" if diff else f"{what}: nothing to change", err=True)


_inventory_option = click.option("--inventory", help="inventory CSV (mac,ip,hostname,serial,pid,vendor,model,...); "
                                  "default DHCP_INVENTORY, else JUNIPER_INVENTORY")
_out_option = click.option("--out", help="write to this file instead of standard output")
_diff_option = click.option("--diff", "show_diff", is_flag=True,
                            help="print a unified diff of the configuration before/after the merge")
_dry_run_option = click.option("--dry-run", is_flag=True, help="merge in memory only: write and apply nothing")


@click.group()
def dhcp():
    """Generate DHCP server configuration for Cisco PnP (option 43) and Juniper ZTP."""


@dhcp.command("kea")
@_inventory_option
@_out_option
@click.option("--merge", "merge_file", help="merge into this kea-dhcp4.conf: only the items marked "
              "managed-by pnp-server are replaced, everything else is kept")
@_diff_option
@_dry_run_option
@click.option("--hooks-dir", help="directory of libdhcp_flex_option.so (default: detected)")
@click.option("--interface", "interfaces", multiple=True, help="interface to listen on (repeat; default *)")
@click.pass_obj
def kea(config: Config, inventory, out, merge_file, show_diff, dry_run, hooks_dir, interfaces):
    """kea-dhcp4 JSON (Kea 2.2 syntax): a whole config, or --merge into an existing one."""
    spec = _spec(config, inventory)
    options = KeaOptions(interfaces=interfaces or ("*",), hooks_dir=hooks_dir or config.kea_hooks_dir or None,
                         control_socket=config.kea_control_socket or None)
    if (show_diff or dry_run) and not merge_file:
        raise click.UsageError("--diff and --dry-run go with --merge")
    try:
        if merge_file:
            before = kea_loads(Path(merge_file).read_text())
            result = kea_merge(before, spec, options)
        else:
            result = kea_config(spec, options)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if merge_file:
        _report(kea_diff(before, result, Path(merge_file).name), show_diff, dry_run, merge_file)
    if not dry_run:
        _write(kea_dumps(result), out)


@dhcp.command("dhcpd")
@_inventory_option
@_out_option
@click.option("--merge", "merge_file", help="merge into this dhcpd.conf: only the block between the "
              "'managed-by pnp-server' marker lines is replaced, every byte outside it is kept")
@_diff_option
@_dry_run_option
@click.pass_obj
def dhcpd(config: Config, inventory, out, merge_file, show_diff, dry_run):
    """ISC dhcpd 4.4 dhcpd.conf (legacy: ISC DHCP is end of life, prefer Kea)."""
    spec = _spec(config, inventory)
    if (show_diff or dry_run) and not merge_file:
        raise click.UsageError("--diff and --dry-run go with --merge")
    try:
        if merge_file:
            before = Path(merge_file).read_text()
            text = dhcpd_merge(before, spec)
        else:
            text = dhcpd_config(spec, DhcpdOptions())
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if merge_file:
        _report(dhcpd_diff(before, text, Path(merge_file).name), show_diff, dry_run, merge_file)
    if not dry_run:
        _write(text, out)


@dhcp.command("push")
@_inventory_option
@click.option("--socket", "target", help="kea-dhcp4 control socket path or Control Agent URL "
              "(default KEA_CONTROL_SOCKET)")
@click.option("--test-only", "--dry-run", "test_only", is_flag=True,
              help="config-get, merge and config-test only; apply nothing")
@click.option("--no-write", is_flag=True, help="config-set without config-write (memory only)")
@_diff_option
@click.option("--show", is_flag=True, help="print the merged config")
@click.pass_obj
def push(config: Config, inventory, target, test_only, no_write, show_diff, show):
    """Merge into a running Kea: config-get, merge, then (if anything changed) config-test, config-set, config-write."""
    spec = _spec(config, inventory)
    target = target or config.kea_control_socket
    options = KeaOptions(hooks_dir=config.kea_hooks_dir or None)
    control = KeaControl(target, user=config.kea_api_user or None, password=config.kea_api_password or None)
    try:
        result = kea_push(control, spec, options, apply=not test_only, write=not no_write)
    except KeaError as exc:
        raise click.ClickException(f"{exc} (nothing applied)" if exc.command == "config-test" else str(exc)) from None
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"Kea at {target}: {exc}") from None
    if show_diff:
        click.echo(result.diff(), nl=False)
    if show:
        click.echo(json.dumps(result.after, indent=2))
    if not result.changed:
        click.echo(f"Kea at {target}: nothing to change (no config-set, no config-write)", err=True)
        return
    done = "tested (not applied)" if test_only else "applied" if no_write else "applied and written"
    click.echo(f"Kea at {target}: configuration {done}", err=True)
