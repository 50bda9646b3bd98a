"""Kea 2.2 output: every variant through the real ``kea-dhcp4 -t``, the Kea traps
of docs/protocol.md §17.3, merge, determinism."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from app.dhcp import (
    InventoryDevice,
    JuniperZtp,
    KeaOptions,
    default_hooks_dir,
    kea_config,
    kea_config_text,
    kea_loads,
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
    assert not [d for d in d4.get("option-def", []) if d["code"] == 43 and d.get("space", "dhcp4") == "dhcp4"]
    defs = {(d["code"], d["space"]): d for d in d4.get("option-def", [])}
    if spec.juniper is not None:
        assert defs[(150, "dhcp4")]["type"] == "ipv4-address" and defs[(150, "dhcp4")]["array"] is True
        for code in (0, 1, 2, 3, 4, 5, 7, 8):
            assert defs[(code, VENDOR_SPACE)]["type"] == "string"
    else:
        assert not defs
    # every subnet has an id
    assert all("id" in s for s in d4["subnet4"])
    for cls in classes_of(config):
        data = {o.get("name"): o for o in cls.get("option-data", [])}
        if cls["name"].startswith("cisco-pnp"):
            # raw option 43 needs the class-level string def (trap 1)
            assert cls["option-def"] == [{"name": "vendor-encapsulated-options", "code": 43, "type": "string"}]
            assert data["vendor-encapsulated-options"]["always-send"] is True
            assert data["vendor-encapsulated-options"]["data"].startswith("5A1")
        if cls["name"].startswith("juniper"):
            # complete set in every container scope (trap 2); sub-options and 150 by code
            codes = {(o.get("code"), o.get("space", "dhcp4")): o for o in cls.get("option-data", [])}
            assert data["vendor-encapsulated-options"] == {"name": "vendor-encapsulated-options", "always-send": True}
            assert (3, VENDOR_SPACE) in codes and (150, "dhcp4") in codes
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
    # Kea 2.2 has no lcase(): letters compared one by one in either case, digit runs at once
    vci = "option[vendor-class-identifier].text"
    ex_test = by_name["juniper-ex4300-48p"]["test"]
    assert ex_test.startswith(f"(substring({vci}, 0, 1) == 'j' or substring({vci}, 0, 1) == 'J') and ")
    assert f"substring({vci}, 10, 7) == '4300-48'" in ex_test
    assert ex_test.endswith(f"(substring({vci}, 18, all) == '' or substring({vci}, 18, 1) == '-')")
    assert by_name["juniper"]["test"].endswith(f"substring({vci}, 7, 1) == '-'")
    assert all(c["user-context"] == {"managed-by": MANAGED_BY} for c in d4["client-classes"])
    subs = {o.get("code", o.get("name")): o.get("data") for o in by_name["juniper-ex4300-48p"]["option-data"]}
    assert subs == {  # sub-option 0 is per MAC: flex_option below
        "vendor-encapsulated-options": None,
        3: "http",
        5: "8080",
        150: "192.0.2.10",
    }
    srx = {o.get("code"): o.get("data") for o in by_name["juniper-srx320"]["option-data"]}
    assert srx[1] == "configs/srx320-base.conf" and 0 not in srx
    flex = flex_entry(config)
    assert flex is not None
    assert flex["library"] == os.path.join(default_hooks_dir(), FLEX_OPTION_LIB)
    image_url = "'ztp_fetch/image/' + option[vendor-class-identifier].text + '/' + hexstring(pkt4.mac, '-') + '/"
    assert flex["parameters"]["options"] == [
        {
            "code": 43,
            "client-class": "juniper",
            "comment": "managed-by pnp-server",
            "sub-options": [
                {"code": 0, "space": VENDOR_SPACE,
                 "add": f"ifelse(member('juniper-ex4300-48p'), {image_url}jinstall-ex-4300-21.4R3.15-signed.tgz', "
                        f"ifelse(member('juniper-mx204'), {image_url}junos-vmhost-install-mx-x86-64-23.4R2.tgz', ''))"},
                {"code": 1, "space": VENDOR_SPACE, "add": PER_MAC_CONFIG_EXPR},
            ],
        }
    ]
    assert PER_MAC_CONFIG_EXPR == (
        "'ztp_fetch/conf/' + option[vendor-class-identifier].text + '/' + hexstring(pkt4.mac, '-') + '.conf'"
    )
    (subnet,) = d4["subnet4"]
    mark = {"managed-by": MANAGED_BY}
    assert subnet["id"] == 1 and subnet["user-context"] == mark
    assert subnet["pools"] == [{"pool": "192.0.2.100-192.0.2.199", "user-context": mark}]
    assert subnet["option-data"] == [
        {"name": "routers", "data": "192.0.2.1", "user-context": mark},
        {"name": "domain-name-servers", "data": "192.0.2.53", "user-context": mark},
        {"name": "domain-name", "data": "ztp.example.net", "user-context": mark},
        {"name": "ntp-servers", "data": "192.0.2.123", "user-context": mark},
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


# merge: tests/dhcp/test_dhcp_merge.py


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
    # without the def Kea reads option 150's data as hex: the def is load-bearing
    assert "hexadecimal digits: 192.0.2.10" in kea_reject(config)


def test_reservation_fields(make_spec) -> None:
    spec = make_spec(inventory=[InventoryDevice("AA-BB-CC-00-11-22", hostname="sw-9", vendor="juniper")])
    (res,) = kea_config(spec)["Dhcp4"]["subnet4"][0]["reservations"]
    assert res == {
        "hw-address": "aa:bb:cc:00:11:22",
        "hostname": "sw-9",
        "user-context": {"managed-by": MANAGED_BY, "vendor": "juniper"},
    }
