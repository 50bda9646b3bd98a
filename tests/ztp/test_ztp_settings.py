"""Juniper/DHCP settings: environment parsing and the start-up checks of JUNIPER_MODELS."""

from __future__ import annotations

import pytest

from app.config import Config, ConfigError, validate


def test_environment_values_are_converted():
    env = {"PNP_JUNIPER_MODELS": '{"ex4300-48p": "jinstall-ex-4300-21.4R3.15-signed.tgz", "mx204": null}',
           "PNP_DHCP_ROUTERS": "192.0.2.1, 192.0.2.2", "PNP_DHCP_CISCO": "false", "PNP_DHCP_SUBNET_ID": "7",
           "PNP_DHCP_CISCO_PIDS": '["C9300", {"pid": "C11", "port": 8080}]'}
    config = Config.load(None, env=env, resolve_images=False)
    assert config.juniper_models == {"ex4300-48p": "jinstall-ex-4300-21.4R3.15-signed.tgz", "mx204": ""}
    assert config.dhcp_routers == ("192.0.2.1", "192.0.2.2")
    assert config.dhcp_cisco is False and config.dhcp_subnet_id == 7
    assert config.dhcp_cisco_pids == ("C9300", {"pid": "C11", "port": 8080})


@pytest.mark.parametrize("env", [{"PNP_DHCP_JUNIPER": "maybe"}, {"PNP_JUNIPER_MODELS": "[1, 2]"},
                                 {"PNP_DHCP_SUBNET_ID": "one"}])
def test_bad_environment_values(env):
    with pytest.raises(ConfigError):
        Config.load(None, env=env, resolve_images=False)


def test_validate_juniper_catalogue(make_config, lab):
    (lab / "images" / "jinstall-ex-4300-21.4R3.15-signed.tgz").write_bytes(b"x")
    assert validate(make_config(juniper_models={"ex4300-48p": "jinstall-ex-4300-21.4R3.15-signed.tgz",
                                                "mx204": ""})) == []
    problems = validate(make_config(juniper_models={"EX4300": "", "mx204": "junos-missing.tgz"}))
    assert any("JUNIPER_MODELS" in p and "'EX4300'" in p for p in problems)
    assert any("junos-missing.tgz (for model mx204) is missing" in p for p in problems)
