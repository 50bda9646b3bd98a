"""``python3 run.py dhcp ...``: the DHCP helper driven by settings.py and the inventory CSV.

    python3 run.py dhcp kea   [--inventory FILE] [--merge kea-dhcp4.conf [--diff] [--dry-run]] [--out FILE]
    python3 run.py dhcp dhcpd [--inventory FILE] [--merge dhcpd.conf [--diff] [--dry-run]] [--out FILE]
    python3 run.py dhcp push  [--socket PATH|URL] [--dry-run] [--diff]

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
    JuniperOverrides,
    JuniperZtp,
    KeaControl,
    KeaError,
    KeaOptions,
    PnpServer,
    Subnet,
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
from app.ztp.juniper import read_inventory_csv
from app.ztp.token import config_file_name

__all__ = ["dhcp", "inventory_devices", "spec_from_config"]


_OVERRIDE_COLUMNS = ("image", "config_file", "image_type", "alt_image", "ftp_timeout", "proxy")
_SUBNET_KEYS = {"subnet", "id", "pool", "pools", "routers", "dns", "domain", "ntp", "syslog", "relay", "interface",
                "site"}


def _addresses(value) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return value.replace(",", " ").replace(";", " ").split()
    return [str(v) for v in value]


def _int_or_none(what: str, value):
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number of seconds, got {value!r}") from None


def inventory_devices(rows: Iterable[Mapping[str, str]], ztp_token_secret: str = "") -> list[InventoryDevice]:
    """Reservations from inventory rows (app.ztp.juniper.read_inventory_csv).

    Rows with a ``mac`` (any form, dotted ``aabb.ccdd.eeff`` too) and an ``ip``
    or ``hostname`` become :class:`InventoryDevice` (vendor from the
    ``vendor`` column, else ``juniper`` when a ``model`` is given, else
    ``cisco``); ``subnet`` or ``site`` picks the subnet of a row without ip;
    ``syslog``/``ntp`` are per-device options 7/42; ``image``, ``config_file``,
    ``image_type``, ``alt_image``, ``ftp_timeout``, ``proxy`` are per-device
    Juniper sub-options. Other rows are skipped. With ``ztp_token_secret`` a
    Juniper device without its own ``config_file`` announces its token-bearing
    config file name (app.ztp.token.config_file_name, docs/config-secrecy.md).
    Raises ValueError naming the row's MAC on a bad value.
    """
    devices = []
    for row in rows:
        mac = row.get("mac")
        if not mac or not (row.get("ip") or row.get("hostname")):
            continue
        vendor = (row.get("vendor") or ("juniper" if row.get("model") else "cisco")).lower()
        try:
            overrides = None
            values = {k: row.get(k) or None for k in _OVERRIDE_COLUMNS}
            if ztp_token_secret and vendor == "juniper" and not values["config_file"]:
                values["config_file"] = config_file_name(ztp_token_secret, mac, row.get("model"))
            if any(values.values()):
                values["ftp_timeout"] = _int_or_none("ftp_timeout", values["ftp_timeout"])
                overrides = JuniperOverrides(**values)
            devices.append(InventoryDevice(mac=mac, ip=row.get("ip") or None, hostname=row.get("hostname") or None,
                                           serial=row.get("serial") or None, pid=row.get("pid") or None,
                                           vendor=vendor, model=row.get("model") or None,
                                           subnet=row.get("subnet") or row.get("site") or None,
                                           syslog=_addresses(row.get("syslog")), ntp=_addresses(row.get("ntp")),
                                           juniper=overrides))
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


def _pool(what: str, text: str) -> tuple[str, str]:
    pool = str(text).replace(" ", "")
    if pool.count("-") != 1:
        raise ValueError(f"{what} {text!r} must be \"<first>-<last>\", e.g. \"192.0.2.100-192.0.2.199\"")
    first, last = pool.split("-")
    return first, last


def _subnets(config: Config) -> list[Subnet]:
    """DHCP_SUBNETS entries (DHCP_DNS/DOMAIN/NTP/SYSLOG as defaults), else the single DHCP_SUBNET."""
    defaults = {"dns": config.dhcp_dns, "domain": config.dhcp_domain or None, "ntp": config.dhcp_ntp,
                "syslog": config.dhcp_syslog}
    if config.dhcp_subnets:
        if config.dhcp_subnet:
            raise ValueError("set DHCP_SUBNETS or DHCP_SUBNET, not both")
        subnets = []
        for n, entry in enumerate(config.dhcp_subnets, 1):
            what = f"DHCP_SUBNETS entry {n} ({entry.get('subnet', '?')})"
            unknown = set(entry) - _SUBNET_KEYS
            if unknown:
                raise ValueError(f"{what}: unknown key(s) {', '.join(sorted(unknown))} "
                                 f"(known: {', '.join(sorted(_SUBNET_KEYS))})")
            if "subnet" not in entry or "id" not in entry:
                raise ValueError(f"{what}: needs \"subnet\" and \"id\"")
            pools = [_pool(f"{what} pool", p) for p in ([entry["pool"]] if entry.get("pool") else [])
                     + list(entry.get("pools") or [])]
            values = {**defaults, **{k: entry[k] for k in ("dns", "domain", "ntp", "syslog") if k in entry}}
            try:
                subnets.append(Subnet(entry["subnet"], entry["id"], routers=_addresses(entry.get("routers")),
                                      dns=_addresses(values["dns"]), domain=values["domain"] or None,
                                      ntp=_addresses(values["ntp"]), syslog=_addresses(values["syslog"]),
                                      pools=pools, relay=_addresses(entry.get("relay")),
                                      interface=entry.get("interface") or None, site=entry.get("site") or None))
            except ValueError as exc:
                raise ValueError(f"{what}: {exc}") from None
        return subnets
    if not config.dhcp_subnet:
        raise ValueError("DHCP_SUBNET is not set, nor DHCP_SUBNETS (settings.py or PNP_DHCP_SUBNET), "
                         "e.g. \"192.0.2.0/24\"")
    first, last = _pool("DHCP_POOL", config.dhcp_pool)
    return [Subnet(config.dhcp_subnet, config.dhcp_subnet_id, first, last, routers=config.dhcp_routers,
                   dns=config.dhcp_dns, domain=config.dhcp_domain or None, ntp=config.dhcp_ntp,
                   syslog=config.dhcp_syslog)]


def _file_server(config: Config) -> JuniperFileServer:
    """The file server of JUNIPER_TRANSFER_MODE: this server on PORT (http) / HTTPS_PORT (https), else the
    TFTP/FTP server the settings name (this server serves neither, so nothing is assumed)."""
    mode = config.juniper_transfer_mode
    codes = tuple(config.juniper_server_options)
    unknown = [c for c in codes if c not in (66, 67, 150)]
    if unknown or not any(c in (66, 150) for c in codes):
        raise ValueError(f"JUNIPER_SERVER_OPTIONS {list(codes)!r}: use 150 and/or 66 (and 67 for the config name)")
    extra = dict(server_options=tuple(c for c in codes if c != 67), boot_file=67 in codes)
    if mode == "http":
        return JuniperFileServer(config.juniper_file_server or config.server_ip,
                                 config.juniper_file_port or config.device_port, "http", **extra)
    if mode == "https":
        return JuniperFileServer(config.juniper_file_server or config.server_ip,
                                 config.juniper_file_port or config.https_port or 443, "https", **extra)
    if mode in ("tftp", "ftp"):
        server = config.juniper_tftp_server if mode == "tftp" else config.juniper_ftp_server
        if not server:
            name = "JUNIPER_TFTP_SERVER" if mode == "tftp" else "JUNIPER_FTP_SERVER"
            raise ValueError(f"JUNIPER_TRANSFER_MODE={mode!r} needs {name}: this server only serves HTTP/HTTPS, "
                             f"so name the {mode.upper()} server that holds the images and configs")
        return JuniperFileServer(server, 80, mode, **extra)
    raise ValueError(f"JUNIPER_TRANSFER_MODE {mode!r}: use http, https, tftp or ftp")


def _model(config: Config, model: str, image: str) -> JuniperModel:
    opts = dict(config.juniper_model_options.get(model, {}))
    unknown = set(opts) - {"config_file", "image_type", "alt_image", "ftp_timeout", "proxy"}
    if unknown:
        raise ValueError(f"JUNIPER_MODEL_OPTIONS[{model!r}]: unknown key(s) {', '.join(sorted(unknown))}")
    if opts.get("config_file"):
        opts["config_mode"] = "static"
    return JuniperModel(model, image or None, **opts)


def spec_from_config(config: Config, inventory: Iterable[Mapping[str, str]] = ()) -> DhcpSpec:
    """The DhcpSpec for ``config`` and inventory rows.

    Subnets: ``DHCP_SUBNETS`` (a list, each entry with its own pools, routers,
    relay, interface, site and options), else ``DHCP_SUBNET``/``DHCP_POOL``/...
    Cisco (``DHCP_CISCO``): option 43 ``5A1N;B2;K4;I<SERVER_IP>;J<PORT>`` (``K5``
    and ``J<DHCP_PNP_HTTPS_PORT>`` with ``DHCP_PNP_HTTPS``), per-PID classes from
    ``DHCP_CISCO_PIDS``. Juniper (``DHCP_JUNIPER``): the file server of
    ``JUNIPER_TRANSFER_MODE`` (see :func:`_file_server`), one model class per
    ``JUNIPER_MODELS`` entry with its ``JUNIPER_MODEL_OPTIONS``. Raises
    ValueError with a one-line reason (missing subnet or ``SERVER_IP``, bad values,
    tftp/ftp without a server).
    """
    if not config.server_ip:
        raise ValueError("SERVER_IP is not set: option 43 and option 150 need it")
    subnets = _subnets(config)
    pnp = pids = None
    if config.dhcp_cisco:
        pnp = _pnp_server(config)
        pids = [_pid_class(config, e) for e in config.dhcp_cisco_pids]
    juniper = None
    if config.dhcp_juniper:
        unknown = sorted(set(config.juniper_model_options) - set(config.juniper_models))
        if unknown:
            raise ValueError(f"JUNIPER_MODEL_OPTIONS names {', '.join(unknown)}, which JUNIPER_MODELS does not list")
        models = [_model(config, model, image) for model, image in sorted(config.juniper_models.items())]
        juniper = JuniperZtp(_file_server(config), models)
    return DhcpSpec(subnets=subnets, pnp=pnp, cisco_pids=pids or (), juniper=juniper,
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
        spec = spec_from_config(config, read_inventory_csv(path))
    except ValueError as exc:
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
