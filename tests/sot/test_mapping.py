"""The field map from a source's device JSON to SotDevice (app/sot/mapping.py), and webhook signatures."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from app.sot.mapping import (
    MappingError,
    field_map,
    provisioning_mac,
    reservation_row,
    to_device,
)
from app.sot.webhook import _device_id, signature_ok
from tests.sot.netbox_replay import template

pytestmark = pytest.mark.sot


def test_netbox_device_maps_every_documented_field():
    data = template("device")
    device = to_device(data, field_map("netbox"), mac="00-53-00-00-21-01", render_config=["C1131-8PWB"])
    assert (device.sot_id, device.serial, device.hostname) == ("101", "FGL2548HH01", "br-hamburg-1")
    assert (device.pid, device.model, device.vendor) == ("C1131-8PWB", "c1131-8pwb", "cisco")
    assert (device.site, device.status, device.role) == ("Hamburg", "planned", "Branch router")
    assert (device.ip, device.mac) == ("192.0.2.21", "00:53:00:00:21:01")
    assert device.variables == {"snmp_location": "Hamburg HQ", "ntp_server": "192.0.2.1"}
    assert device.template == "branch.j2" and device.image is None
    assert device.render, "the device type is listed in SOT_RENDER_CONFIG"
    assert reservation_row(device) == {"mac": "00:53:00:00:21:01", "ip": "192.0.2.21", "hostname": "br-hamburg-1",
                                       "serial": "FGL2548HH01", "pid": "C1131-8PWB", "vendor": "cisco"}


def test_field_map_is_overridable_with_fallbacks():
    data = template("device")
    data["custom_fields"]["cisco_pid"] = "C1131X-8PLTEPWB"
    fields = field_map("netbox", {"pid": "custom_fields.cisco_pid|device_type.model",
                                  "hostname": "custom_fields.missing|name"})
    device = to_device(data, fields)
    assert device.pid == "C1131X-8PLTEPWB" and device.hostname == "br-hamburg-1"
    with pytest.raises(MappingError, match="unknown field 'pidd'"):
        field_map("netbox", {"pidd": "x"})


def test_nautobot_paths_and_juniper_vendor_from_display():
    data = {"id": "a0c1", "name": "ex-1", "serial": "JN11", "status": {"name": "Staged"},
            "location": {"name": "Berlin"}, "device_type": {"model": "EX4300-48P", "display": "Juniper EX4300-48P",
                                                             "manufacturer": {"id": "m1"}},
            "tags": [{"name": "pnp-rendered"}], "config_context": {}}
    device = to_device(data, field_map("nautobot"), render_config=["PNP-Rendered"])
    assert (device.vendor, device.model, device.site, device.status) == ("juniper", "ex4300-48p", "Berlin", "Staged")
    assert device.render and reservation_row(device) == {"hostname": "ex-1", "serial": "JN11",
                                                         "pid": "EX4300-48P", "vendor": "juniper",
                                                         "model": "ex4300-48p"}


def test_unusable_data_is_refused_with_the_device_named():
    data = template("device")
    assert to_device(dict(data, serial=""), field_map("netbox")) is None  # no serial yet: skipped
    with pytest.raises(MappingError, match="device br-hamburg-1: serial 'FGL 1' is not a serial number"):
        to_device(dict(data, serial="FGL 1"), field_map("netbox"))
    with pytest.raises(MappingError, match="is not IPv4"):
        to_device(dict(data, primary_ip4={"address": "2001:db8::1/64"}), field_map("netbox"))
    with pytest.raises(MappingError, match="config context is not an object"):
        to_device(dict(data, config_context=["x"]), field_map("netbox"))


def test_provisioning_interface_choice():
    interfaces = [{"name": "Gi0/0/1", "mac_address": "02:00:00:00:00:01", "mgmt_only": False},
                  {"name": "Gi0", "mac_address": None, "mgmt_only": True,
                   "primary_mac_address": {"mac_address": "02:00:00:00:00:02"}},
                  {"name": "Gi0/0/2", "mac_address": "02:00:00:00:00:03"}]
    assert provisioning_mac(interfaces) == "02:00:00:00:00:02"  # mgmt-only, NetBox 4.2 primary MAC
    assert provisioning_mac(interfaces, "Gi0/0/2") == "02:00:00:00:00:03"
    assert provisioning_mac(interfaces[:1] + interfaces[2:]) == "02:00:00:00:00:01"
    assert provisioning_mac([{"name": "x"}]) is None and provisioning_mac(interfaces, "nope") is None


def test_webhook_signature_and_the_device_it_names():
    body = b'{"event": "updated"}'
    good = hmac.new(b"s3cret", body, hashlib.sha512).hexdigest()
    assert signature_ok("s3cret", body, good) and signature_ok("s3cret", body, good.upper())
    assert not signature_ok("s3cret", body + b" ", good)
    assert not signature_ok("", body, good) and not signature_ok("s3cret", body, None)
    assert not signature_ok("s3cret", body, hmac.new(b"s3cret", body, hashlib.sha256).hexdigest())
    assert _device_id("device", {"id": 7}) == "7"
    assert _device_id("interface", {"id": 9, "device": {"id": 7}}) == "7"
    assert _device_id("ipaddress", {"assigned_object": {"device": {"id": 7}}}) == "7"
    assert _device_id("site", {"id": 1}) is None  # anything else: a full sync


def test_the_csv_source_behind_the_same_interface(tmp_path):
    from app.sot.sources import CsvSource, SourceError, reservation_rows

    path = tmp_path / "inventory.csv"
    path.write_text("serial,hostname,pid,mac,ip,template,site\n"
                    "FGL1,r1,C1131-8PWB,00-53-00-00-00-01,192.0.2.41,branch.j2,Berlin\n"
                    "JN1,ex1,,00:53:00:00:00:02,192.0.2.42,ex.j2,\n")
    source = CsvSource(path)
    devices = source.devices()
    assert [(d.serial, d.hostname, d.mac, d.ip, d.template) for d in devices] == [
        ("FGL1", "r1", "00:53:00:00:00:01", "192.0.2.41", "branch.j2"),
        ("JN1", "ex1", "00:53:00:00:00:02", "192.0.2.42", "ex.j2")]
    assert devices[0].variables == {"site": "Berlin"} and source.device("JN1").hostname == "ex1"
    assert reservation_rows(source)[0] == {"mac": "00:53:00:00:00:01", "ip": "192.0.2.41", "hostname": "r1",
                                           "serial": "FGL1", "pid": "C1131-8PWB", "vendor": "cisco"}
    with pytest.raises(SourceError, match="cannot render"):
        source.render_config(devices[0])
    with pytest.raises(SourceError, match="no status to write back"):
        source.set_status("FGL1", "active")
    path.write_text("serial\nFGL 1\n")
    with pytest.raises(SourceError, match="line 2: serial 'FGL 1'"):
        source.devices()
