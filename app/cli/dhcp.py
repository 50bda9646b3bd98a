"""``python3 run.py dhcp ...``: the DHCP helper driven by settings.py and the inventory (CSV or source of truth).

    python3 run.py dhcp kea   [--inventory FILE] [--merge kea-dhcp4.conf] [--out FILE]
    python3 run.py dhcp dhcpd [--inventory FILE] [--out FILE]
    python3 run.py dhcp push  [--socket PATH|URL] [--test-only]

:func:`spec_from_config` turns a Config (``DHCP_*``, ``JUNIPER_*``,
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
    kea_config,
    kea_dumps,
    kea_merge,
    kea_push,
)
from app.ops.dhcp import inventory_devices, spec_from_config
from app.sot.sources import SourceError, make_source, reservation_rows
from app.ztp.juniper import read_inventory_csv

__all__ = ["dhcp", "inventory_devices", "spec_from_config"]  # the last two: app/ops/dhcp.py


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
            return spec_from_config(config, read_inventory_csv(path))
        return spec_from_config(config, reservation_rows(make_source(config)))
    except (ValueError, SourceError) as exc:
        raise click.ClickException(str(exc)) from None


def _write(text: str, out: str | None) -> None:
    if out:
        Path(out).write_text(text)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)


_inventory_option = click.option("--inventory", help="inventory CSV (mac,ip,hostname,serial,pid,vendor,model,...); "
                                  "default DHCP_INVENTORY, else JUNIPER_INVENTORY")
_out_option = click.option("--out", help="write to this file instead of standard output")


@click.group()
def dhcp():
    """Generate DHCP server configuration for Cisco PnP (option 43) and Juniper ZTP."""


@dhcp.command("kea")
@_inventory_option
@_out_option
@click.option("--merge", "merge_file", help="merge into this kea-dhcp4.conf, keeping everything else in it")
@click.option("--hooks-dir", help="directory of libdhcp_flex_option.so (default: detected)")
@click.option("--interface", "interfaces", multiple=True, help="interface to listen on (repeat; default *)")
@click.pass_obj
def kea(config: Config, inventory, out, merge_file, hooks_dir, interfaces):
    """kea-dhcp4 JSON (Kea 2.2 syntax): a whole config, or --merge into an existing one."""
    spec = _spec(config, inventory)
    options = KeaOptions(interfaces=interfaces or ("*",), hooks_dir=hooks_dir or config.kea_hooks_dir or None,
                         control_socket=config.kea_control_socket or None)
    try:
        if merge_file:
            result = kea_merge(Path(merge_file).read_text(), spec, options)
        else:
            result = kea_config(spec, options)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    _write(kea_dumps(result), out)


@dhcp.command("dhcpd")
@_inventory_option
@_out_option
@click.pass_obj
def dhcpd(config: Config, inventory, out):
    """ISC dhcpd 4.4 dhcpd.conf (legacy: ISC DHCP is end of life, prefer Kea)."""
    spec = _spec(config, inventory)
    try:
        text = dhcpd_config(spec, DhcpdOptions())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    _write(text, out)


@dhcp.command("push")
@_inventory_option
@click.option("--socket", "target", help="kea-dhcp4 control socket path or Control Agent URL "
              "(default KEA_CONTROL_SOCKET)")
@click.option("--test-only", is_flag=True, help="config-get, merge and config-test only; apply nothing")
@click.option("--no-write", is_flag=True, help="config-set without config-write (memory only)")
@click.option("--show", is_flag=True, help="print the merged config")
@click.pass_obj
def push(config: Config, inventory, target, test_only, no_write, show):
    """Merge into a running Kea: config-get, merge, config-test, then config-set and config-write."""
    spec = _spec(config, inventory)
    target = target or config.kea_control_socket
    options = KeaOptions(hooks_dir=config.kea_hooks_dir or None)
    try:
        merged = kea_push(KeaControl(target), spec, options, apply=not test_only, write=not no_write)
    except KeaError as exc:
        raise click.ClickException(f"{exc} (nothing applied)" if exc.command == "config-test" else str(exc)) from None
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"Kea at {target}: {exc}") from None
    if show:
        click.echo(json.dumps(merged, indent=2))
    done = "tested (not applied)" if test_only else "applied" if no_write else "applied and written"
    click.echo(f"Kea at {target}: configuration {done}", err=True)
