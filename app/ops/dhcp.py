"""DHCP settings to an :class:`app.dhcp.DhcpSpec`: shared by ``run.py dhcp`` and the source-of-truth webhook.

:func:`spec_from_config` turns a Config (``DHCP_*``, ``JUNIPER_*``,
``SERVER_IP``/``PORT``) and inventory rows (flat dicts: mac, ip, hostname,
serial, pid, vendor, model, ...) into the spec the generators of app.dhcp take.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from app.config import Config
from app.dhcp import (
    CiscoPidClass,
    DhcpSpec,
    InventoryDevice,
    JuniperFileServer,
    JuniperModel,
    JuniperOverrides,
    JuniperZtp,
    PnpServer,
    Subnet,
)
from app.ztp.token import config_file_name

__all__ = ["inventory_devices", "spec_from_config"]


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
    Juniper sub-options. Other rows are skipped. Raises ValueError naming the
    row's MAC on a bad value.
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
                # the per-device ZTP token (app/ztp/token.py, docs/config-secrecy.md)
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
