"""``python3 run.py dhcp ...``: the DHCP helper driven by settings.py and the inventory CSV.

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
from collections.abc import Iterable, Mapping
from pathlib import Path

import click

from app.config import Config
from app.dhcp import (
    CiscoPidClass,
    DhcpdOptions,
    DhcpSpec,
    InventoryDevice,
    JuniperFileServer,
    JuniperModel,
    JuniperZtp,
    KeaControl,
    KeaError,
    KeaOptions,
    PnpServer,
    Subnet,
    dhcpd_config,
    kea_config,
    kea_dumps,
    kea_merge,
    kea_push,
)
from app.ztp.juniper import read_inventory_csv
from app.ztp.token import config_file_name

__all__ = ["dhcp", "inventory_devices", "spec_from_config"]


def inventory_devices(rows: Iterable[Mapping[str, str]], ztp_token_secret: str = "") -> list[InventoryDevice]:
    """Reservations from inventory rows (app.ztp.juniper.read_inventory_csv).

    Rows with a ``mac`` and an ``ip`` or ``hostname`` become
    :class:`InventoryDevice` (vendor from the ``vendor`` column, else
    ``juniper`` when a ``model`` is given, else ``cisco``); other rows are
    skipped. With ``ztp_token_secret`` a Juniper device's reservation announces its
    token-bearing config file name (app.ztp.token.config_file_name). Raises ValueError
    naming the row's MAC on a bad value.
    """
    devices = []
    for row in rows:
        mac = row.get("mac")
        vendor = (row.get("vendor") or ("juniper" if row.get("model") else "cisco")).lower()
        tokened = bool(ztp_token_secret) and vendor == "juniper"
        if not mac or not (row.get("ip") or row.get("hostname") or tokened):
            continue
        try:
            devices.append(InventoryDevice(mac=mac, ip=row.get("ip") or None, hostname=row.get("hostname") or None,
                                           serial=row.get("serial") or None, pid=row.get("pid") or None,
                                           vendor=vendor, model=row.get("model") or None,
                                           config_file=config_file_name(ztp_token_secret, mac, row.get("model"))
                                           if tokened else None))
        except ValueError as exc:
            raise ValueError(f"inventory row {mac}: {exc}") from None
    return devices


def _pnp_server(config: Config, **overrides) -> PnpServer:
    values = dict(ip=config.server_ip, port=config.device_port, https=config.dhcp_pnp_https,
                  https_port=config.dhcp_pnp_https_port, trustpool_url=config.dhcp_pnp_trustpool_url or None,
                  ntp=config.dhcp_pnp_ntp or None)
    values.update(overrides)
    return PnpServer(**values)


def _pid_class(config: Config, entry) -> CiscoPidClass:
    if isinstance(entry, str):
        return CiscoPidClass(entry)
    if not isinstance(entry, Mapping) or "pid" not in entry:
        raise ValueError(f"DHCP_CISCO_PIDS entry {entry!r}: use \"C9300\" or {{\"pid\": \"C11\", \"port\": 8080}}")
    overrides = {k: v for k, v in entry.items() if k != "pid"}
    return CiscoPidClass(entry["pid"], _pnp_server(config, **overrides) if overrides else None)


def spec_from_config(config: Config, inventory: Iterable[Mapping[str, str]] = ()) -> DhcpSpec:
    """The DhcpSpec for ``config`` and inventory rows.

    Cisco (``DHCP_CISCO``): option 43 ``5A1N;B2;K4;I<SERVER_IP>;J<PORT>`` (``K5``
    and ``J<DHCP_PNP_HTTPS_PORT>`` with ``DHCP_PNP_HTTPS``), per-PID classes from
    ``DHCP_CISCO_PIDS``. Juniper (``DHCP_JUNIPER``): file server
    ``JUNIPER_FILE_SERVER`` (default SERVER_IP) on ``JUNIPER_FILE_PORT`` (default
    PORT), one model class per ``JUNIPER_MODELS`` entry (per-MAC config
    ``ztp_fetch/conf/...``, image ``images/<official name>``). Raises ValueError
    with a one-line reason (missing ``DHCP_SUBNET``/``DHCP_POOL``/``SERVER_IP``, bad values).
    """
    if not config.dhcp_subnet:
        raise ValueError("DHCP_SUBNET is not set (settings.py or PNP_DHCP_SUBNET), e.g. \"192.0.2.0/24\"")
    pool = config.dhcp_pool.replace(" ", "")
    if pool.count("-") != 1:
        raise ValueError(f"DHCP_POOL {config.dhcp_pool!r} must be \"<first>-<last>\", e.g. \"192.0.2.100-192.0.2.199\"")
    if not config.server_ip:
        raise ValueError("SERVER_IP is not set: option 43 and option 150 need it")
    first, last = pool.split("-")
    subnet = Subnet(config.dhcp_subnet, config.dhcp_subnet_id, first, last, routers=config.dhcp_routers,
                    dns=config.dhcp_dns, domain=config.dhcp_domain or None, ntp=config.dhcp_ntp)
    pnp = pids = None
    if config.dhcp_cisco:
        pnp = _pnp_server(config)
        pids = [_pid_class(config, e) for e in config.dhcp_cisco_pids]
    juniper = None
    if config.dhcp_juniper:
        server = JuniperFileServer(config.juniper_file_server or config.server_ip,
                                   config.juniper_file_port or config.device_port, config.juniper_transfer_mode)
        models = [JuniperModel(model, image or None) for model, image in sorted(config.juniper_models.items())]
        juniper = JuniperZtp(server, models)
    return DhcpSpec(subnet=subnet, pnp=pnp, cisco_pids=pids or (), juniper=juniper,
                    inventory=inventory_devices(inventory, config.ztp_token_secret))


def _inventory_path(config: Config, option: str | None) -> Path:
    if option:
        return Path(option)
    return config.root / (config.dhcp_inventory or config.juniper_inventory)


def _spec(config: Config, inventory: str | None) -> DhcpSpec:
    path = _inventory_path(config, inventory)
    if inventory and not path.is_file():
        raise click.ClickException(f"inventory {path} not found")
    try:
        return spec_from_config(config, read_inventory_csv(path))
    except ValueError as exc:
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
