"""Protocol parsing and building, on the real messages in simulator/messages/."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from app.pnp import protocol as p
from tests.helpers import fixture_text


@pytest.mark.parametrize("raw, pid, vid, sn", [
    ("PID:C1131-8PWB,VID:V01,SN:FGL2548L0AW", "C1131-8PWB", "V01", "FGL2548L0AW"),
    ("PID:ISR4451-X/K9,VID:V08,SN:FCZ230640AB", "ISR4451-X/K9", "V08", "FCZ230640AB"),
    ("PID:7206VXR,VID:,SN:34835437", "7206VXR", "", "34835437"),
    ("PID:AIR-AP2802I-E-K9,SN:FJC1234X0AB", "AIR-AP2802I-E-K9", "", "FJC1234X0AB"),
    ("SN:ABC", "", "", "ABC"),
    ("", "", "", ""),
    ("garbage", "", "", ""),
])
def test_udi_parser_is_tolerant(raw, pid, vid, sn):
    udi = p.Udi.parse(raw)
    assert (udi.pid, udi.vid, udi.sn, udi.raw) == (pid, vid, sn, raw)


def test_work_request_with_reload_reason():
    wr = p.parse_work_request(fixture_text("wr_csr1000v_iosxe-17.3.4a_reload-reason.xml"))
    assert wr.udi.sn == "99CWJ5DOLWQ" and wr.udi.pid == "CSR1000V"
    assert wr.correlator == "CiscoPnP-1.0-R33.200930-I1-P592-T43891-2"
    assert wr.reload_reason == p.ReloadReason("factory-reset", "PnP Service Info 2408", False)
    assert wr.hostname == "Router" and not wr.auth_required


def test_work_request_without_reason_and_auth_required():
    wr = p.parse_work_request(fixture_text("wr_ws-c3750x_cisco-doc.xml"))
    assert wr.udi.sn == "FDO1703P2EB" and wr.auth_required and wr.reload_reason is None


def test_device_info_csr1000v_install_mode_and_large_sizes():
    resp = p.parse_work_response(fixture_text("resp_device-info-all_csr1000v_iosxe-17.3.4a.xml"))
    info = resp.device_info
    assert resp.success and resp.service == "device-info"
    assert info.version == "17.3.4a" and info.image_file == "bootflash:packages.conf"
    assert info.boot_mode == "install" and info.config_reg == "0x2102"
    assert len(info.file_systems) == 3
    assert info.bootflash.freespace == 5438058496 > 2**31


def test_device_info_single_filesystem_flash0():
    resp = p.parse_work_response(fixture_text("resp_device-info-all_cisco3945_single-filesystem.xml"))
    info = resp.device_info
    assert len(info.file_systems) == 1 and info.bootflash.name == "flash0"
    assert info.config_reg == "0x0" and info.boot_mode == "bundle"


def test_fault_has_no_correlator_and_reads_error_namespace():
    resp = p.parse_work_response(fixture_text("resp_fault_reconstructed.xml"))
    assert resp.is_fault and resp.correlator is None and resp.success is False
    assert resp.error.code == "XSVC:Client"
    assert "unknown XML tag" in resp.error.message and "struct" in resp.error.message


def test_fault_with_lower_case_prefix():
    text = fixture_text("resp_fault_reconstructed.xml").replace("XSVC-ERR", "xsvc-err")
    assert "struct" in p.parse_work_response(text).error.message


def test_failed_response_error_info():
    xml = ('<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:C1131-8PWB,VID:V01,SN:X1">'
           '<response xmlns="urn:cisco:pnp:image-install" correlator="C7" success="0"><errorInfo>'
           '<errorSeverity>XSVC_ERROR</errorSeverity><errorCode>PnP Service Error 1825</errorCode>'
           '<errorMessage>No space on destination file system</errorMessage></errorInfo></response></pnp>')
    resp = p.parse_work_response(xml)
    assert resp.success is False and resp.error.number == 1825
    assert resp.error.message == "No space on destination file system"


def test_cli_config_result_entries_reveal_rejected_lines():
    xml = ('<pnp xmlns="urn:cisco:pnp" version="1.0" udi="SN:X1"><response xmlns="urn:cisco:pnp:cli-config" '
           'correlator="C" success="1"><resultEntry lineNumber="1" cliString="config-register 0x2102">'
           '<success change="CHANGE" mode="IMMEDIATE"/></resultEntry><resultEntry lineNumber="2" '
           'cliString="bogus"><failure errorType="SYNTAX" errorCode="X"/><text>% Invalid input</text>'
           '</resultEntry></response></pnp>')
    resp = p.parse_work_response(xml)
    assert [e.outcome for e in resp.result_entries] == ["success", "failure"]
    assert [e.cli for e in resp.failed_entries] == ["bogus"]


@pytest.mark.parametrize("body, reason", [
    (b"", "empty body"),
    (b"not xml", "malformed XML"),
    (b"<pnp><info/></pnp>", "expected <pnp"),
    (b'<pnp xmlns="urn:cisco:pnp"/>', "no info/request/response"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><pnp xmlns="urn:cisco:pnp"/>', "forbidden"),
    (b'<pnp xmlns="urn:cisco:pnp" udi="PID:X"><info xmlns="urn:cisco:pnp:work-info"/></pnp>', "no SN"),
    (b'<pnp xmlns="urn:cisco:pnp" udi="SN:1"><response xmlns="urn:cisco:pnp:cli-exec"/></pnp>', "WORK-REQUEST"),
])
def test_work_request_rejections(body, reason):
    with pytest.raises(p.PnpParseError, match=reason):
        p.parse_work_request(body)


def test_built_messages_are_namespaced_and_trimmed():
    xml = p.build_request("PID:A,VID:,SN:1", "C-1", "image-install",
                          p.image_install_body("http://192.0.2.1/images/x.bin", "ab" * 16, "bootflash:x.bin"))
    root = ET.fromstring(xml)
    assert root.tag == "{urn:cisco:pnp}pnp" and root.get("udi") == "PID:A,VID:,SN:1"
    req = root[0]
    assert req.tag == "{urn:cisco:pnp:image-install}request" and req.get("correlator") == "C-1"
    ns = {"i": "urn:cisco:pnp:image-install"}
    assert req.find("i:image/i:copy/i:source/i:location", ns).text == "http://192.0.2.1/images/x.bin"
    assert req.find("i:reload/i:delayIn", ns) is not None, "image-install needs an explicit reload"
    assert "\n" not in xml


def test_backoff_splits_seconds():
    root = ET.fromstring(p.build_backoff("SN:1", "C", 2 * 3600 + 10 * 60 + 25, "take it easy"))
    ns = {"b": "urn:cisco:pnp:backoff"}
    after = root.find("b:request/b:backoff/b:callbackAfter", ns)
    assert [after.find(f"b:{k}", ns).text for k in ("hours", "minutes", "seconds")] == ["2", "10", "25"]


def test_bye_echoes_correlator():
    root = ET.fromstring(p.build_bye("PID:A,SN:1", "CiscoPnP-1.0-1465-25A1212C"))
    info = root[0]
    assert info.tag == "{urn:cisco:pnp:work-info}info" and info.get("correlator") == "CiscoPnP-1.0-1465-25A1212C"
    assert info.find("{urn:cisco:pnp:work-info}workInfo/{urn:cisco:pnp:work-info}bye") is not None


@pytest.mark.parametrize("path, name", [("bootflash:/x.bin", "x.bin"), ("bootflash:x.bin", "x.bin"),
                                        ("x.bin", "x.bin"), ("flash0:c3900.SSA", "c3900.SSA")])
def test_strip_fs(path, name):
    assert p.strip_fs(path) == name
