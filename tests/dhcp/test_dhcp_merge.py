"""Merging into the operator's own DHCP config: ownership by marker, never by name.

Kea: every item the helper writes carries ``user-context.managed-by =
pnp-server`` (flex_option entries a ``comment``); the operator's items are
kept as they are, including classes named like ours, and a conflict stops the
merge with one line. dhcpd: a delimited block, every byte outside it kept.
Every result goes through the real ``kea-dhcp4 -t`` / ``dhcpd -t``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from app.dhcp import (
    DhcpSpec,
    InventoryDevice,
    JuniperFileServer,
    JuniperModel,
    JuniperZtp,
    PnpServer,
    Subnet,
    dhcpd_merge,
    is_managed,
    kea_config,
    kea_diff,
    kea_dumps,
    kea_loads,
    kea_merge,
)
from app.dhcp.dhcpd import BEGIN, END

MARK = {"managed-by": "pnp-server"}
VS = "vendor-encapsulated-options-space"

#: A kea-dhcp4.conf full of the operator's own items, several named like the helper's.
OPERATOR = """// kea-dhcp4.conf maintained by hand
{
  "Dhcp4": {
    "interfaces-config": { "interfaces": [ "*" ] },
    "lease-database": { "type": "memfile", "lfc-interval": 3600 },
    "valid-lifetime": 4000,
    "option-def": [
      { "name": "my-boot-server", "code": 224, "space": "dhcp4", "type": "string" },
      # the operator's own name for Juniper sub-option 0 (same code and type as the helper's: reused)
      { "name": "juniper-image", "code": 0, "space": "vendor-encapsulated-options-space", "type": "string" }
    ],
    "client-classes": [
      { "name": "voip", "test": "substring(option[60].hex, 0, 6) == 'Aastra'", "next-server": "192.0.2.254" },
      { "name": "Juniper-srx320", "test": "option[60].text == 'Juniper-srx320-LAB'",
        "option-data": [ { "name": "vendor-encapsulated-options", "always-send": true },
                         { "name": "juniper-image", "space": "vendor-encapsulated-options-space",
                           "data": "images/junos-srx-lab.tgz" } ] },
      { "name": "Juniper-Catch-ALL", "test": "substring(option[60].text, 0, 3) == 'Jun'" },
      { "name": "cisco-pnp-lab", "test": "option[60].text == 'ciscopnp-lab'" },
      { "name": "printers", "test": "substring(option[60].text, 0, 2) == 'HP'" }
    ],
    "hooks-libraries": [
      { "library": "/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_lease_cmds.so" },
      { "library": "/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_flex_option.so",
        "parameters": { "options": [
          { "code": 67, "add": "ifelse(option[93].hex == 0x0007, 'efi/boot.efi', '')" },
          { "code": 43, "client-class": "Juniper-Catch-ALL", "sub-options": [
            { "code": 0, "space": "vendor-encapsulated-options-space", "add": "'images/lab.tgz'" } ] }
        ] } }
    ],
    "subnet4": [
      { "id": 1, "subnet": "192.0.2.0/24",
        "pools": [ { "pool": "192.0.2.50 - 192.0.2.60" } ],
        "valid-lifetime": 1800,
        "option-data": [ { "name": "domain-search", "data": "example.net" } ],
        "reservations": [
          { "hw-address": "02:00:00:00:00:99", "ip-address": "192.0.2.99", "hostname": "printer-1" },
          { "client-id": "01:02:00:00:00:00:98", "ip-address": "192.0.2.98" },
          { "hw-address": "02:00:00:00:00:77", "ip-address": "192.0.2.77",
            "user-context": { "managed-by": "ztp-dhcp-helper", "vendor": "cisco" } }
        ] },
      { "id": 2, "subnet": "198.51.100.0/24", "pools": [ { "pool": "198.51.100.10 - 198.51.100.20" } ] }
    ],
    "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "stdout" } ], "severity": "INFO" } ]
  }
}
"""


def operator_items(config: dict[str, Any]) -> list[Any]:
    """Every unmarked item of a config, flattened (top-level keys, list entries, subnet entries)."""
    d4 = config["Dhcp4"]
    out: list[Any] = [(k, v) for k, v in d4.items() if not isinstance(v, list)]
    for key in ("option-def", "client-classes", "loggers"):
        out += [(key, i) for i in d4.get(key, []) if not is_managed(i)]
    for hook in d4.get("hooks-libraries", []):
        out.append(("hook", hook["library"]))
        out += [("flex", o) for o in hook.get("parameters", {}).get("options", []) if not is_managed(o)]
    for s in d4.get("subnet4", []):
        if is_managed(s):
            continue
        out.append(("subnet", s["id"], {k: v for k, v in s.items()
                                        if k not in ("pools", "option-data", "reservations")}))
        for key in ("pools", "option-data", "reservations"):
            out += [(s["id"], key, i) for i in s.get(key, []) if not is_managed(i)]
    return out


def test_merge_keeps_every_operator_item(spec: DhcpSpec, kea_check) -> None:
    before = kea_loads(OPERATOR)
    merged = kea_merge(OPERATOR, spec)
    kea_check(kea_dumps(merged))
    kept = operator_items(merged)
    expected = [i for i in operator_items(before) if i != (1, "reservations", before["Dhcp4"]["subnet4"][0]
                                                           ["reservations"][2])]  # the legacy-marked one is ours
    assert kept == expected  # same items, same order, same values
    d4 = merged["Dhcp4"]
    names = [c["name"] for c in d4["client-classes"]]
    assert names[:5] == ["voip", "Juniper-srx320", "Juniper-Catch-ALL", "cisco-pnp-lab", "printers"]
    assert names[5:] == [c["name"] for c in kea_config(spec)["Dhcp4"]["client-classes"]]  # ours appended
    assert all(c["user-context"] == MARK for c in d4["client-classes"][5:])
    # option-def: the operator's code-0 def is reused (ours refer to sub-options by code)
    codes = [(d["code"], d["space"]) for d in d4["option-def"]]
    assert codes.count((0, VS)) == 1 and d4["option-def"][1]["name"] == "juniper-image"
    assert all(is_managed(d) for d in d4["option-def"][2:])
    # flex: the operator's two entries, then ours
    flex = d4["hooks-libraries"][1]["parameters"]["options"]
    assert [(o["code"], is_managed(o)) for o in flex] == [(67, False), (43, False), (43, True)]
    s1 = d4["subnet4"][0]
    assert [p["pool"] for p in s1["pools"]] == ["192.0.2.50 - 192.0.2.60", "192.0.2.100-192.0.2.199"]
    macs = [r.get("hw-address") for r in s1["reservations"]]
    assert macs == ["02:00:00:00:00:99", None, "02:00:00:00:00:01", "02:00:00:00:00:02"]
    assert d4["subnet4"][1] == before["Dhcp4"]["subnet4"][1]


def test_merge_is_idempotent_and_leaves_its_input(spec: DhcpSpec, make_spec) -> None:
    existing = kea_loads(OPERATOR)
    snapshot = copy.deepcopy(existing)
    once = kea_merge(existing, spec)
    assert existing == snapshot
    assert kea_merge(once, spec) == once
    assert kea_dumps(kea_merge(kea_dumps(once), spec)) == kea_dumps(once)
    assert kea_diff(once, kea_merge(once, spec)) == ""
    other = make_spec(juniper=None, cisco_pids=[], inventory=[])
    assert kea_merge(kea_merge(once, other), spec) == once


def test_merge_removes_only_managed_items(spec: DhcpSpec, make_spec, kea_check) -> None:
    once = kea_merge(OPERATOR, spec)
    dropped = kea_merge(once, make_spec(juniper=None, cisco_pids=[], inventory=[]))
    kea_check(kea_dumps(dropped))
    d4 = dropped["Dhcp4"]
    assert [c["name"] for c in d4["client-classes"]] == [
        "voip", "Juniper-srx320", "Juniper-Catch-ALL", "cisco-pnp-lab", "printers", "cisco-pnp"]
    assert [o["code"] for o in d4["hooks-libraries"][1]["parameters"]["options"]] == [67, 43]
    assert [d["name"] for d in d4["option-def"]] == ["my-boot-server", "juniper-image"]
    assert [r.get("hw-address") for r in d4["subnet4"][0]["reservations"]] == ["02:00:00:00:00:99", None]
    diff = kea_diff(once, dropped)
    assert "-        \"name\": \"juniper-ex4300-48p\"," in diff and "Juniper-srx320" not in diff


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    config = kea_loads(OPERATOR)
    target: Any = config["Dhcp4"]
    for key in path:
        target = target[key]
    target.append(value)
    return config


@pytest.mark.parametrize(("existing", "message"), [
    (_with(["client-classes"], {"name": "juniper", "test": "option[60].text == 'x'"}),
     "client class juniper exists already and is not managed by pnp-server"),
    (_with(["subnet4", 0, "reservations"], {"hw-address": "02-00-00-00-00-01", "ip-address": "192.0.2.40"}),
     "reservation hw-address 02:00:00:00:00:01 exists already"),
    (_with(["subnet4", 0, "reservations"], {"hw-address": "02:00:00:00:00:55", "ip-address": "192.0.2.21"}),
     "reservation ip-address 192.0.2.21 exists already"),
    (_with(["subnet4", 0, "option-data"], {"name": "routers", "data": "192.0.2.254"}),
     r"subnet 1 \(192.0.2.0/24\): option code 3 exists already"),
    (_with(["subnet4", 0, "pools"], {"pool": "192.0.2.150 - 192.0.2.160"}),
     "the existing pool 192.0.2.150 - 192.0.2.160 overlaps the helper's 192.0.2.100-192.0.2.199"),
    (_with(["option-def"], {"name": "juniper-config", "code": 1, "space": VS, "type": "binary"}),
     "option-def code 1 in vendor-encapsulated-options-space exists already"),
    (_with(["subnet4"], {"id": 9, "subnet": "192.0.2.0/25"}), "subnet 192.0.2.0/24 exists already with id 1|overlaps"),
    ({"Dhcp4": {"subnet4": [{"id": 1, "subnet": "10.1.0.0/16"}]}}, "subnet id 1 is 10.1.0.0/16"),
    ({"Dhcp6": {}}, "no Dhcp4"),
    ({"Dhcp4": {"client-classes": {}}}, "must be a list"),
    ("{ not json", "not valid JSON"),
])
def test_conflicts_stop_the_merge(spec: DhcpSpec, existing: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        kea_merge(existing if isinstance(existing, str) else json.loads(json.dumps(existing)), spec)
    assert "\n" not in str(err.value)


def test_an_item_marked_by_the_operator_is_adopted(spec: DhcpSpec, kea_check) -> None:
    config = _with(["client-classes"], {"name": "juniper", "test": "option[60].text == 'old'", "user-context": MARK})
    merged = kea_merge(config, spec)
    kea_check(kea_dumps(merged))
    juniper = [c for c in merged["Dhcp4"]["client-classes"] if c["name"] == "juniper"]
    assert len(juniper) == 1 and "old" not in juniper[0]["test"]


def two_subnets(**overrides: Any) -> DhcpSpec:
    values: dict[str, Any] = {
        "subnets": [
            Subnet("192.0.2.0/24", 1, "192.0.2.100", "192.0.2.199", routers=["192.0.2.1"], site="lab"),
            Subnet("203.0.113.0/24", 3, "203.0.113.100", "203.0.113.150", routers=["203.0.113.1"],
                   pools=[("203.0.113.200", "203.0.113.210")], relay=["10.99.0.2"], syslog=["10.99.0.1"],
                   site="site-b"),
            Subnet("10.99.0.0/30", 4, interface="lo"),  # the server's own link (kea -t checks it exists): no pool
        ],
        "pnp": PnpServer("192.0.2.10"),
        "juniper": JuniperZtp(JuniperFileServer("192.0.2.10", 80), [JuniperModel("ex4300-48p", "junos.tgz")]),
        "inventory": [
            InventoryDevice("02:00:00:00:00:01", "192.0.2.21", "sw-a", vendor="juniper"),
            InventoryDevice("02:00:00:00:00:02", "203.0.113.22", "sw-b", vendor="juniper"),
            InventoryDevice("0200.0000.0003", hostname="sw-c", subnet="site-b", vendor="juniper"),
        ],
    }
    values.update(overrides)
    return DhcpSpec(**values)


def test_several_subnets(kea_check) -> None:
    spec = two_subnets()
    merged = kea_merge(OPERATOR, spec)
    kea_check(kea_dumps(merged))
    by_id = {s["id"]: s for s in merged["Dhcp4"]["subnet4"]}
    assert sorted(by_id) == [1, 2, 3, 4]
    s3 = by_id[3]
    assert is_managed(s3) and s3["relay"] == {"ip-addresses": ["10.99.0.2"]}
    assert [p["pool"] for p in s3["pools"]] == ["203.0.113.100-203.0.113.150", "203.0.113.200-203.0.113.210"]
    assert [r["hw-address"] for r in s3["reservations"]] == ["02:00:00:00:00:02", "02:00:00:00:00:03"]
    assert {"name": "log-servers", "data": "10.99.0.1", "user-context": MARK} in s3["option-data"]
    assert by_id[4]["interface"] == "lo" and "pools" not in by_id[4]
    assert [r["hw-address"] for r in by_id[1]["reservations"] if is_managed(r)] == ["02:00:00:00:00:01"]
    # a subnet dropped from the spec goes away (it is ours); the operator's subnet 1 loses only our items
    fewer = kea_merge(merged, two_subnets(subnets=two_subnets().subnets[1:], inventory=two_subnets().inventory[1:]))
    kea_check(kea_dumps(fewer))
    by_id = {s["id"]: s for s in fewer["Dhcp4"]["subnet4"]}
    assert sorted(by_id) == [1, 2, 3, 4]
    assert by_id[1] == kea_loads(OPERATOR)["Dhcp4"]["subnet4"][0] | {
        "reservations": kea_loads(OPERATOR)["Dhcp4"]["subnet4"][0]["reservations"][:2]}
    gone = kea_merge(fewer, two_subnets(subnets=two_subnets().subnets[:1], inventory=two_subnets().inventory[:1]))
    assert sorted(s["id"] for s in gone["Dhcp4"]["subnet4"]) == [1, 2]


def test_debian_default_config(make_spec, kea_check) -> None:
    """The file shipped by kea-dhcp4-server (its subnet 192.0.2.0/24 has no id and a pool .1-.200)."""
    shipped = Path("/etc/kea/kea-dhcp4.conf")
    if not shipped.is_file():
        pytest.fail("kea-dhcp4-server's /etc/kea/kea-dhcp4.conf is missing: apt-get install -y kea-dhcp4-server")
    with pytest.raises(ValueError, match="overlaps the helper's 192.0.2.100-192.0.2.199"):
        kea_merge(shipped.read_text(), make_spec())
    spec = make_spec(subnet=Subnet("192.0.2.0/24", 1, "192.0.2.210", "192.0.2.250", dns=["192.0.2.53"]))
    merged = kea_merge(shipped.read_text(), spec)
    kea_check(kea_dumps(merged))
    subnet = next(s for s in merged["Dhcp4"]["subnet4"] if s["subnet"] == "192.0.2.0/24")
    assert subnet["id"] == 1 and not is_managed(subnet)  # adopted: same prefix, no id
    assert kea_merge(merged, spec) == merged


# --------------------------------------------------------------------------- dhcpd

DHCPD = """# dhcpd.conf of the lab, by hand
authoritative;
default-lease-time 600;
option domain-name "lab.example.net";

class "Juniper-srx320" {   # the operator's own, named like ours
  match if option vendor-class-identifier = "Juniper-srx320-LAB";
}

subnet 10.99.0.0 netmask 255.255.255.252 {
}

host printer-1 {
  hardware ethernet 02:00:00:00:00:99;
  fixed-address 192.0.2.99;
}
"""


def test_dhcpd_merge_keeps_every_byte_outside_the_block(spec: DhcpSpec, dhcpd_check) -> None:
    merged = dhcpd_merge(DHCPD, spec)
    assert merged.startswith(DHCPD)
    block = merged[len(DHCPD):]
    assert block.startswith("\n" + BEGIN + "\n") and block.endswith(END + "\n")
    assert "authoritative" not in block  # the global statements stay the operator's
    dhcpd_check(merged)
    assert dhcpd_merge(merged, spec) == merged
    # the operator edits around the block: kept; the block is replaced in place
    edited = "# top\n" + merged.replace(END + "\n", END + "\n# after the block\nhost x { hardware ethernet "
                                        "02:00:00:00:00:98; }\n")
    other = dhcpd_merge(edited, two_subnets(subnets=[Subnet("192.0.2.0/24", 1, "192.0.2.100", "192.0.2.199")],
                                            inventory=[]))
    head, rest = other.split(BEGIN, 1)
    assert head == "# top\n" + DHCPD + "\n"
    assert rest.split(END, 1)[1] == "\n# after the block\nhost x { hardware ethernet 02:00:00:00:00:98; }\n"
    assert "juniper-ex4300\"" not in other and "02:00:00:00:00:01" not in other
    dhcpd_check(other)


@pytest.mark.parametrize(("extra", "message"), [
    ('class "juniper" { match if option vendor-class-identifier = "x"; }\n', 'class "juniper" outside'),
    ("subnet 192.0.2.0 netmask 255.255.255.0 { }\n", "subnet 192.0.2.0/24 is declared outside"),
    ("host h { hardware ethernet 02:00:00:00:00:01; }\n", "hardware ethernet 02:00:00:00:00:01"),
    ("host h { hardware ethernet 02:00:00:00:00:66; fixed-address 192.0.2.21; }\n", "fixed-address 192.0.2.21"),
    ("option space juniper;\n", "option space juniper is defined outside"),
    (BEGIN + "\n", "markers are broken"),
])
def test_dhcpd_merge_conflicts(spec: DhcpSpec, extra: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dhcpd_merge(DHCPD + extra, spec)


def test_dhcpd_commented_out_items_are_no_conflict(spec: DhcpSpec, dhcpd_check) -> None:
    text = DHCPD + '# class "juniper" { }\n#host h { hardware ethernet 02:00:00:00:00:01; }\n'
    dhcpd_check(dhcpd_merge(text, spec))
