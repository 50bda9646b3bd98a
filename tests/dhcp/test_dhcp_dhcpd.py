"""ISC dhcpd 4.4 output: every variant through the real ``dhcpd -t``, structure, determinism."""

from __future__ import annotations

import random
import re

import pytest

from app.dhcp import DhcpdOptions, JuniperZtp, dhcpd_config


def test_variants_pass_dhcpd(variant_spec, dhcpd_check) -> None:
    spec = variant_spec
    text = dhcpd_config(spec)
    dhcpd_check(text)
    # option 43 is never redefined globally (that would force one encoding on every client)
    assert not re.search(r"option\s+\S+\s+code\s+43\s*=", text)
    if spec.juniper is not None:
        assert text.index("option space juniper;") < text.index('class "juniper')
        for block in re.findall(r'class "juniper[^"]*" \{.*?\n\}', text, re.S):
            assert "vendor-option-space juniper;" in block
            assert "option juniper.transfer-mode" in block and "option tftp-server-address" in block
            assert "option juniper.config-file-name" in block
    if spec.pnp is not None:
        assert 'match if option vendor-class-identifier = "ciscopnp";' in text
        assert ("option cisco-vivco code 124 = string;" in text) == bool(spec.cisco_pids)


def test_full_text(spec) -> None:
    text = dhcpd_config(spec)
    assert text.startswith("# ISC dhcpd 4.4 configuration") and text.endswith("}\n")
    cisco = re.search(r'class "cisco-pnp" \{.*?\n\}', text, re.S).group(0)
    assert cisco == "\n".join(
        [
            'class "cisco-pnp" {',
            '  match if option vendor-class-identifier = "ciscopnp";',
            '  if substring(option cisco-vivco, 6, 5) = "C9300" {',
            "    # cisco-pnp-c9300: PID (option 124, byte 6) starts with C9300",
            '    option vendor-encapsulated-options "5A1N;B2;K4;I192.0.2.10;J80";',
            '  } elsif substring(option cisco-vivco, 6, 3) = "C11" {',
            "    # cisco-pnp-c11: PID (option 124, byte 6) starts with C11",
            '    option vendor-encapsulated-options "5A1N;B2;K4;I192.0.2.10;J8080";',
            "  } else {",
            '    option vendor-encapsulated-options "5A1N;B2;K4;I192.0.2.10;J80";',
            "  }",
            "}",
        ]
    )
    ex = re.search(r'class "juniper-ex4300" \{.*?\n\}', text, re.S).group(0)
    assert (
        '  match if (lcase(option vendor-class-identifier) = "juniper-ex4300" or '
        'substring(lcase(option vendor-class-identifier), 0, 15) = "juniper-ex4300-")\n'
        '       and not (lcase(option vendor-class-identifier) = "juniper-ex4300-48p" or '
        'substring(lcase(option vendor-class-identifier), 0, 19) = "juniper-ex4300-48p-");'
    ) in ex  # any case: Junos sends Juniper-ex4300-48p, some releases Juniper-EX4300-48P
    assert "image-file-name" not in ex
    generic = re.search(r'class "juniper" \{.*?\n\}', text, re.S).group(0)
    for model in ("ex4300-48p", "ex4300", "srx320", "mx204"):
        assert f'lcase(option vendor-class-identifier) = "juniper-{model}"' in generic
    srx = re.search(r'class "juniper-srx320" \{.*?\n\}', text, re.S).group(0)
    assert 'option juniper.config-file-name "configs/srx320-base.conf";' in srx and "concat(" not in srx
    assert (
        "host ztp-020000000001 {\n  # vendor juniper model ex4300-48p\n  hardware ethernet 02:00:00:00:00:01;" in text
    )
    assert "  fixed-address 192.0.222;" not in text and "  fixed-address 192.0.2.22;" in text
    assert "no-mac-yet" not in text
    assert (
        "subnet 192.0.2.0 netmask 255.255.255.0 {\n  range 192.0.2.100 192.0.2.199;\n  option routers 192.0.2.1;"
        in text
    )


def test_options(spec, dhcpd_check) -> None:
    text = dhcpd_config(
        spec, DhcpdOptions(authoritative=False, default_lease_time=600, max_lease_time=900, ping_check=False)
    )
    dhcpd_check(text)
    assert "authoritative;" not in text and "default-lease-time 600;" in text and "ping-check false;" in text
    with pytest.raises(ValueError, match="max_lease_time"):
        DhcpdOptions(default_lease_time=600, max_lease_time=60)


def test_deterministic(make_spec) -> None:
    spec = make_spec()
    text = dhcpd_config(spec)
    rng = random.Random(7)
    for _ in range(5):
        inventory, pids, models = list(spec.inventory), list(spec.cisco_pids), list(spec.juniper.models)
        for items in (inventory, pids, models):
            rng.shuffle(items)
        shuffled = make_spec(inventory=inventory, cisco_pids=pids, juniper=JuniperZtp(spec.juniper.file_server, models))
        assert dhcpd_config(shuffled) == text


def test_bad_syntax_is_caught(spec, dhcpd_bin, tmp_path) -> None:
    """The dhcpd check is real: a broken file fails (dhcpd prints its banner either way)."""
    import subprocess

    path = tmp_path / "broken.conf"
    path.write_text(dhcpd_config(spec).replace("option space juniper;", ""))
    proc = subprocess.run([dhcpd_bin, "-4", "-t", "-cf", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "no option space named juniper" in proc.stdout + proc.stderr
