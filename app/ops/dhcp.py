"""DHCP settings to an :class:`app.dhcp.DhcpSpec`: shared by ``run.py dhcp`` and the source-of-truth webhook.

:func:`spec_from_config` turns a Config (``DHCP_*``, ``JUNIPER_*``,
``SERVER_IP``/``PORT``) and inventory rows (flat dicts: mac, ip, hostname,
serial, pid, vendor, model) into the spec the generators of app.dhcp take.
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
    JuniperZtp,
    PnpServer,
    Subnet,
)

__all__ = ["inventory_devices", "spec_from_config"]


def inventory_devices(rows: Iterable[Mapping[str, str]]) -> list[InventoryDevice]:
    """Reservations from inventory rows (app.ztp.juniper.read_inventory_csv).

    Rows with a ``mac`` and an ``ip`` or ``hostname`` become
    :class:`InventoryDevice` (vendor from the ``vendor`` column, else
    ``juniper`` when a ``model`` is given, else ``cisco``); other rows are
    skipped. Raises ValueError naming the row's MAC on a bad value.
    """
    devices = []
    for row in rows:
        mac = row.get("mac")
        if not mac or not (row.get("ip") or row.get("hostname")):
            continue
        vendor = (row.get("vendor") or ("juniper" if row.get("model") else "cisco")).lower()
        try:
            devices.append(InventoryDevice(mac=mac, ip=row.get("ip") or None, hostname=row.get("hostname") or None,
                                           serial=row.get("serial") or None, pid=row.get("pid") or None,
                                           vendor=vendor, model=row.get("model") or None))
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
                    inventory=inventory_devices(inventory))
