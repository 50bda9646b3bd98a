"""Kea 2.2 output: every variant through the real ``kea-dhcp4 -t``, the Kea traps
of docs/protocol.md §17.3, merge, determinism."""

from __future__ import annotations

import copy
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from app.dhcp import (
    InventoryDevice,
    JuniperZtp,
    KeaOptions,
    Subnet,
    default_hooks_dir,
    kea_config,
    kea_config_text,
    kea_dumps,
    kea_loads,
    kea_merge,
)
from app.dhcp.kea import FLEX_OPTION_LIB, MANAGED_BY, PER_MAC_CONFIG_EXPR, VENDOR_SPACE


def classes_of(config: dict[str, Any]) -> list[dict[str, Any]]:
    return config["Dhcp4"].get("client-classes", [])


def flex_entry(config: dict[str, Any]) -> dict[str, Any] | None:
    for hook in config["Dhcp4"].get("hooks-libraries", []):
        if os.path.basename(hook["library"]) == FLEX_OPTION_LIB:
            return hook
    return None


def assert_invariants(config: dict[str, Any], spec) -> None:
    """Guards against the silent failures of docs/protocol.md §17.3 / §7."""
    d4 = config["Dhcp4"]
    names = [c["name"] for c in classes_of(config)]
    # no global option-43 def (built-in 43 must stay the container)
    assert not [d for d in d4["option-def"] if d["code"] == 43 and d.get("space", "dhcp4") == "dhcp4"]
    defs = {(d["code"], d["space"]): d for d in d4["option-def"]}
    assert defs[(150, "dhcp4")]["type"] == "ipv4-address" and defs[(150, "dhcp4")]["array"] is True
    for code in (0, 1, 3, 5):
        assert defs[(code, VENDOR_SPACE)]["type"] == "string"
    # every subnet has an id
    assert all("id" in s for s in d4["subnet4"])
    for cls in classes_of(config):
        data = {o["name"]: o for o in cls.get("option-data", [])}
        if cls["name"].startswith("cisco-pnp"):
            # raw option 43 needs the class-level string def (trap 1)
            assert cls["option-def"] == [{"name": "vendor-encapsulated-options", "code": 43, "type": "string"}]
            assert data["vendor-encapsulated-options"]["always-send"] is True
            assert data["vendor-encapsulated-options"]["data"].startswith("5A1")
        if cls["name"].startswith("juniper"):
            # complete set in every container scope (trap 2)
            assert data["vendor-encapsulated-options"] == {"name": "vendor-encapsulated-options", "always-send": True}
            assert "transfer-mode" in data and "tftp-server-address" in data
            assert all(
                o.get("space") == VENDOR_SPACE
                for n, o in data.items()
                if n not in ("vendor-encapsulated-options", "tftp-server-address")
            )
    # order: PID classes before cisco-pnp, models before juniper
    if "cisco-pnp" in names:
        assert all(names.index(n) < names.index("cisco-pnp") for n in names if n.startswith("cisco-pnp-"))
    if "juniper" in names:
        assert all(names.index(n) < names.index("juniper") for n in names if n.startswith("juniper-"))
    # flex guard classes exist (flex_option accepts undefined ones silently)
    hook = flex_entry(config)
    if spec.juniper is None:
        assert hook is None
    else:
        assert hook is not None and os.path.isabs(hook["library"])
        for opt in hook["parameters"]["options"]:
            guards = [opt.get("client-class")] + [s.get("client-class") for s in opt.get("sub-options", [])]
            assert all(g is None or g in names for g in guards)


def test_variants_pass_kea(variant_spec, kea_check) -> None:
    spec = variant_spec
    config = kea_config(spec)
    assert_invariants(config, spec)
    kea_check(kea_config_text(spec))


def test_full_config_content(spec) -> None:
    config = kea_config(spec)
    d4 = config["Dhcp4"]
    assert [c["name"] for c in d4["client-classes"]] == [
        "cisco-pnp-c9300",
        "cisco-pnp-c11",
        "cisco-pnp",
        "juniper-ex4300-48p",
        "juniper-ex4300",
        "juniper-srx320",
        "juniper-mx204",
        "juniper",
    ]
    by_name = {c["name"]: c for c in d4["client-classes"]}
    assert by_name["cisco-pnp-c11"]["test"] == (
        "(option[vendor-class-identifier].text == 'ciscopnp') and (substring(option[124].hex, 6, 3) == 'C11')"
    )
    assert by_name["cisco-pnp-c11"]["option-data"][0]["data"] == "5A1N;B2;K4;I192.0.2.10;J8080"
    assert by_name["cisco-pnp-c9300"]["option-data"][0]["data"] == "5A1N;B2;K4;I192.0.2.10;J80"
    assert by_name["cisco-pnp"]["test"] == "option[vendor-class-identifier].text == 'ciscopnp'"
    assert by_name["juniper-ex4300-48p"]["test"] == (
        "(option[vendor-class-identifier].text == 'Juniper-ex4300-48p') or "
        "(substring(option[vendor-class-identifier].text, 0, 19) == 'Juniper-ex4300-48p-')"
    )
    assert by_name["juniper"]["test"] == "substring(option[vendor-class-identifier].text, 0, 8) == 'Juniper-'"
    subs = {o["name"]: o.get("data") for o in by_name["juniper-ex4300-48p"]["option-data"]}
    assert subs == {
        "vendor-encapsulated-options": None,
        "image-file-name": "images/jinstall-ex-4300-21.4R3.15-signed.tgz",
        "transfer-mode": "http",
        "http-port": "8080",
        "tftp-server-address": "192.0.2.10",
    }
    srx = {o["name"]: o.get("data") for o in by_name["juniper-srx320"]["option-data"]}
    assert srx["config-file-name"] == "configs/srx320-base.conf" and "image-file-name" not in srx
    flex = flex_entry(config)
    assert flex is not None
    assert flex["library"] == os.path.join(default_hooks_dir(), FLEX_OPTION_LIB)
    assert flex["parameters"]["options"] == [
        {
            "code": 43,
            "client-class": "juniper",
            "sub-options": [{"name": "config-file-name", "space": VENDOR_SPACE, "add": PER_MAC_CONFIG_EXPR}],
        }
    ]
    assert PER_MAC_CONFIG_EXPR == (
        "'ztp_fetch/conf/' + option[vendor-class-identifier].text + '/' + hexstring(pkt4.mac, '-') + '.conf'"
    )
    (subnet,) = d4["subnet4"]
    assert subnet["id"] == 1 and subnet["pools"] == [{"pool": "192.0.2.100 - 192.0.2.199"}]
    assert subnet["option-data"] == [
        {"name": "routers", "data": "192.0.2.1"},
        {"name": "domain-name-servers", "data": "192.0.2.53"},
        {"name": "domain-name", "data": "ztp.example.net"},
        {"name": "ntp-servers", "data": "192.0.2.123"},
    ]
    assert subnet["reservations"] == [
        {
            "hw-address": "02:00:00:00:00:01",
            "ip-address": "192.0.2.21",
            "hostname": "sw-access-01",
            "user-context": {"managed-by": MANAGED_BY, "vendor": "juniper", "model": "ex4300-48p"},
        },
        {
            "hw-address": "02:00:00:00:00:02",
            "ip-address": "192.0.2.22",
            "hostname": "rtr-01",
            "user-context": {"managed-by": MANAGED_BY, "vendor": "cisco", "serial": "FGL2231A0BC", "pid": "C1131-8PWB"},
        },
    ]
    assert d4["control-socket"] == {"socket-type": "unix", "socket-name": "/run/kea/kea4-ctrl-socket"}


def test_options(spec, kea_check, tmp_path: Path) -> None:
    opts = KeaOptions(
        interfaces=["eth1", "eth2/192.0.2.1"],
        hooks_dir="/opt/kea/hooks",
        control_socket=None,
        lease_file=str(tmp_path / "leases.csv"),
        valid_lifetime=600,
        log_output="syslog",
        log_severity="DEBUG",
    )
    d4 = kea_config(spec, opts)["Dhcp4"]
    assert d4["interfaces-config"] == {"interfaces": ["eth1", "eth2/192.0.2.1"]}
    assert "control-socket" not in d4 and d4["valid-lifetime"] == 600
    assert d4["lease-database"]["name"] == str(tmp_path / "leases.csv")
    assert d4["hooks-libraries"][0]["library"] == "/opt/kea/hooks/libdhcp_flex_option.so"
    with pytest.raises(ValueError, match="valid_lifetime"):
        KeaOptions(valid_lifetime=0)


def test_hooks_dir_detected() -> None:
    """CI installs kea-dhcp4-server: the hook must be found where Debian puts it."""
    assert os.path.isfile(os.path.join(default_hooks_dir(), FLEX_OPTION_LIB))


def test_deterministic(make_spec) -> None:
    spec = make_spec()
    text = kea_config_text(spec)
    assert text == kea_config_text(make_spec()) and text.endswith("}\n")
    rng = random.Random(4)
    for _ in range(5):
        inventory, pids = list(spec.inventory), list(spec.cisco_pids)
        models = list(spec.juniper.models)
        for items in (inventory, pids, models):
            rng.shuffle(items)
        shuffled = make_spec(inventory=inventory, cisco_pids=pids, juniper=JuniperZtp(spec.juniper.file_server, models))
        assert kea_config_text(shuffled) == text


# --------------------------------------------------------------------------- kea_loads


def test_loads_comments() -> None:
    text = """
    // line comment
    # hash comment
    {
      /* block
         comment */
      "Dhcp4": {
        "a": "http://x/#not-a-comment", // trailing
        "b": "/* not a comment */",
        "c": "quote \\" // still string",
        "d": [1, 2, ], # trailing hash and commas
        "e": ",]",
      },
    }
    """
    assert kea_loads(text) == {
        "Dhcp4": {
            "a": "http://x/#not-a-comment",
            "b": "/* not a comment */",
            "c": 'quote " // still string',
            "d": [1, 2],
            "e": ",]",
        }
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"Dhcp4": {} "x": 1}', "line 1"),
        ("[]", "must be a JSON object"),
        ('{"Dhcp4": {} /* open', "unterminated"),
        ('<?include "/etc/kea/subnets.json"?>', "include"),
    ],
)
def test_loads_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kea_loads(text)


# --------------------------------------------------------------------------- merge

EXISTING = """// kea-dhcp4.conf maintained by hand, with comments of all three kinds
{
  "Dhcp4": {
    # interfaces
    "interfaces-config": { "interfaces": [ "*" ] },
    "control-socket": { "socket-type": "unix", "socket-name": "/run/kea/kea4-ctrl-socket" },
    "lease-database": { "type": "memfile", "lfc-interval": 3600 },
    "valid-lifetime": 4000,
    /* an unrelated option definition and a stale one of ours (old name, same code+space) */
    "option-def": [
      { "name": "my-boot-server", "code": 224, "space": "dhcp4", "type": "string" },
      { "name": "juniper-config", "code": 1, "space": "vendor-encapsulated-options-space", "type": "string" }
    ],
    "client-classes": [
      { "name": "voip", "test": "substring(option[60].hex, 0, 6) == 'Aastra'", "next-server": "192.0.2.254" },
      { "name": "Juniper", "test": "substring(option[60].text, 0, 8) == 'Juniper-'" },
      { "name": "cisco-pnp-old", "test": "option[60].text == 'ciscopnp'" },
      { "name": "printers", "test": "substring(option[60].text, 0, 2) == 'HP'" }
    ],
    "hooks-libraries": [
      { "library": "/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_lease_cmds.so" },
      {
        "library": "/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_flex_option.so",
        "parameters": { "options": [
          { "code": 67, "add": "ifelse(option[93].hex == 0x0007, 'efi/boot.efi', '')" },
          { "code": 43, "client-class": "Juniper", "add": "'broken'" }
        ] }
      }
    ],
    "subnet4": [
      {
        "id": 1,
        "subnet": "192.0.2.0/24",
        "pools": [ { "pool": "192.0.2.50 - 192.0.2.60" } ],
        "valid-lifetime": 1800,
        "option-data": [
          { "name": "routers", "data": "192.0.2.254" },
          { "name": "domain-search", "data": "example.net" }
        ],
        "reservations": [
          { "hw-address": "02:00:00:00:00:01", "ip-address": "192.0.2.30", "hostname": "old-name" },
          { "hw-address": "02:00:00:00:00:99", "ip-address": "192.0.2.99", "hostname": "printer-1" },
          { "client-id": "01:02:00:00:00:00:98", "ip-address": "192.0.2.98" },
          { "hw-address": "02:00:00:00:00:77", "ip-address": "192.0.2.77",
            "user-context": { "managed-by": "ztp-dhcp-helper", "vendor": "cisco" } }
        ]
      },
      { "id": 2, "subnet": "198.51.100.0/24", "pools": [ { "pool": "198.51.100.10 - 198.51.100.20" } ] }
    ],
    "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "stdout" } ], "severity": "INFO" } ]
  }
}
"""


def test_existing_sample_is_valid(kea_check) -> None:
    kea_check(EXISTING)


def test_merge_keeps_the_rest(spec, kea_check) -> None:
    merged = kea_merge(EXISTING, spec)
    kea_check(kea_dumps(merged))
    assert_invariants(merged, spec)
    d4 = merged["Dhcp4"]
    before = kea_loads(EXISTING)["Dhcp4"]
    for key in ("interfaces-config", "control-socket", "lease-database", "valid-lifetime", "loggers"):
        assert d4[key] == before[key]
    # option-def: ours replace the stale code-1 def; the unrelated one stays first
    assert d4["option-def"][0]["name"] == "my-boot-server"
    assert [d["name"] for d in d4["option-def"] if d["code"] == 1] == ["config-file-name"]
    # classes: foreign ones kept in place, ours where the first stale one ("Juniper") was
    names = [c["name"] for c in d4["client-classes"]]
    assert names[0] == "voip" and names[-1] == "printers"
    assert names[1:-1] == [c["name"] for c in kea_config(spec)["Dhcp4"]["client-classes"]]
    assert "Juniper" not in names and "cisco-pnp-old" not in names
    # hooks: lease_cmds kept; flex keeps its code-67 entry, our code-43 entry replaces the broken one
    assert d4["hooks-libraries"][0] == before["hooks-libraries"][0]
    flex = d4["hooks-libraries"][1]
    assert [o["code"] for o in flex["parameters"]["options"]] == [67, 43]
    assert flex["parameters"]["options"][1]["client-class"] == "juniper"
    # subnet 1: pools/routers ours, domain-search and valid-lifetime kept
    s1, s2 = d4["subnet4"]
    assert s2 == before["subnet4"][1]
    assert s1["pools"] == [{"pool": "192.0.2.100 - 192.0.2.199"}] and s1["valid-lifetime"] == 1800
    opts = {o["name"]: o["data"] for o in s1["option-data"]}
    assert opts["routers"] == "192.0.2.1" and opts["domain-search"] == "example.net"
    # reservations: same MAC replaced, stale managed one (…:77) removed, foreign ones kept
    res = {(r.get("hw-address") or r.get("client-id")): r for r in s1["reservations"]}
    assert set(res) == {"02:00:00:00:00:99", "01:02:00:00:00:00:98", "02:00:00:00:00:01", "02:00:00:00:00:02"}
    assert res["02:00:00:00:00:01"]["ip-address"] == "192.0.2.21"


def test_merge_idempotent(spec, make_spec) -> None:
    once = kea_merge(EXISTING, spec)
    assert kea_merge(once, spec) == once
    assert kea_dumps(kea_merge(kea_dumps(once), spec)) == kea_dumps(once)
    assert kea_merge(kea_loads(EXISTING), spec) == once  # dict input == text input
    # the whole config is a fixed point of merge as well
    whole = kea_config(spec)
    assert kea_merge(whole, spec) == whole
    # merging another spec then the first again gives the first result
    other = make_spec(juniper=None, cisco_pids=[], inventory=[])
    assert kea_merge(kea_merge(once, other), spec) == once


def test_merge_does_not_touch_input(spec) -> None:
    existing = kea_loads(EXISTING)
    snapshot = copy.deepcopy(existing)
    kea_merge(existing, spec)
    assert existing == snapshot


def test_merge_removes_what_spec_drops(make_spec, kea_check) -> None:
    merged = kea_merge(EXISTING, make_spec(juniper=None, cisco_pids=[], inventory=[]))
    kea_check(kea_dumps(merged))
    d4 = merged["Dhcp4"]
    assert [c["name"] for c in d4["client-classes"]] == ["voip", "cisco-pnp", "printers"]
    flex = flex_entry(merged)
    assert flex is not None and [o["code"] for o in flex["parameters"]["options"]] == [67]
    macs = [r.get("hw-address") for r in d4["subnet4"][0]["reservations"]]
    assert macs == ["02:00:00:00:00:01", "02:00:00:00:00:99", None]  # hand-made …:01 kept: not marked as ours
    # with nothing else in the flex hook, the hook goes away
    only_ours = kea_config(make_spec())
    assert flex_entry(kea_merge(only_ours, make_spec(juniper=None))) is None


def test_merge_adds_subnet_and_hook(make_spec, kea_check) -> None:
    existing = {
        "Dhcp4": {
            "interfaces-config": {"interfaces": ["*"]},
            "subnet4": [{"id": 1, "subnet": "198.51.100.0/24", "pools": [{"pool": "198.51.100.10 - 198.51.100.20"}]}],
        }
    }
    spec = make_spec(subnet=Subnet("192.0.2.0/24", 2, "192.0.2.100", "192.0.2.199", routers=["192.0.2.1"]))
    merged = kea_merge(existing, spec, KeaOptions(hooks_dir=default_hooks_dir()))
    kea_check(merged)
    assert [s["id"] for s in merged["Dhcp4"]["subnet4"]] == [1, 2]
    assert flex_entry(merged) is not None


def test_merge_shared_network(spec, kea_check) -> None:
    existing = {
        "Dhcp4": {
            "interfaces-config": {"interfaces": ["*"]},
            "shared-networks": [
                {"name": "ztp", "subnet4": [{"id": 1, "subnet": "192.0.2.0/24", "valid-lifetime": 900}]}
            ],
        }
    }
    merged = kea_merge(existing, spec)
    kea_check(merged)
    (inner,) = merged["Dhcp4"]["shared-networks"][0]["subnet4"]
    assert inner["valid-lifetime"] == 900 and len(inner["reservations"]) == 2
    assert merged["Dhcp4"].get("subnet4", []) == []


def test_merge_debian_default_config(spec, kea_check) -> None:
    """The file shipped by kea-dhcp4-server (comments, classes, a subnet without id) merges and passes -t."""
    shipped = Path("/etc/kea/kea-dhcp4.conf")
    if not shipped.is_file():
        pytest.fail("kea-dhcp4-server's /etc/kea/kea-dhcp4.conf is missing: apt-get install -y kea-dhcp4-server")
    merged = kea_merge(shipped.read_text(), spec)
    kea_check(kea_dumps(merged))
    subnet = next(s for s in merged["Dhcp4"]["subnet4"] if s["subnet"] == "192.0.2.0/24")
    assert subnet["id"] == 1  # adopted: same prefix, no id
    assert kea_merge(merged, spec) == merged


@pytest.mark.parametrize(
    ("existing", "message"),
    [
        ({"Dhcp6": {}}, "no Dhcp4"),
        ({"Dhcp4": {"client-classes": {}}}, "must be a list"),
        ({"Dhcp4": {"subnet4": [{"id": 9, "subnet": "192.0.2.0/25"}]}}, "overlaps"),
        (
            {
                "Dhcp4": {
                    "subnet4": [
                        {
                            "id": 1,
                            "subnet": "192.0.2.0/24",
                            "reservations": [{"hw-address": "02:00:00:00:00:55", "ip-address": "192.0.2.21"}],
                        }
                    ]
                }
            },
            "192.0.2.21 is already reserved",
        ),
        ("{ not json", "not valid JSON"),
    ],
)
def test_merge_errors(spec, existing: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kea_merge(existing if isinstance(existing, str) else json.loads(json.dumps(existing)), spec)


# --------------------------------------------------------------------------- the traps, proven with the parser


def test_trap_string_43_without_class_def_is_rejected(spec, kea_reject) -> None:
    """Without the class-level def, Kea rejects the raw string (so the def in our classes is load-bearing)."""
    config = kea_config(spec)
    for cls in config["Dhcp4"]["client-classes"]:
        cls.pop("option-def", None)
    assert "option data does not match option definition" in kea_reject(config)


def test_trap_undefined_subopt_space(spec, kea_reject) -> None:
    config = kea_config(spec)
    config["Dhcp4"]["option-def"] = [d for d in config["Dhcp4"]["option-def"] if d["code"] != 150]
    assert "tftp-server-address' does not exist" in kea_reject(config)


def test_reservation_fields(make_spec) -> None:
    spec = make_spec(inventory=[InventoryDevice("AA-BB-CC-00-11-22", hostname="sw-9", vendor="juniper")])
    (res,) = kea_config(spec)["Dhcp4"]["subnet4"][0]["reservations"]
    assert res == {
        "hw-address": "aa:bb:cc:00:11:22",
        "hostname": "sw-9",
        "user-context": {"managed-by": MANAGED_BY, "vendor": "juniper"},
    }
