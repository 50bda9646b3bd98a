"""The XML the server builds (app/pnp/protocol.py): the same bytes xmltodict.unparse wrote.

The builder moved from xmltodict to ElementTree's C serializer (BENCHMARKS.md "Per-message
cost"); real devices were validated against xmltodict's output, so the bytes must not change:
``<bye/>`` (no space), ``&#9;`` for a tab in an attribute, every special character escaped.
xmltodict (a requirement: the simulator builds with it) is the reference here.
"""

from __future__ import annotations

import random

import pytest
import xmltodict

from app.pnp import protocol as p

NASTY = "a&b<c>\td ☃ ]]> 'x' \r\n/>"


def _reference(udi: str, child: str, service: str, correlator: str, body: dict) -> str:
    doc = {"pnp": {"@xmlns": p.PNP_NS, "@version": "1.0", "@udi": udi,
                   child: {"@xmlns": p.SERVICE_PREFIX + service, "@correlator": correlator, **body}}}
    return xmltodict.unparse(doc, full_document=False, short_empty_elements=True)


BODIES = {
    "cli-config": lambda s: p.cli_config_body(["config-register 0x2102", s]),
    "cli-exec": lambda s: p.cli_exec_body(s, 30),
    "image-install": lambda s: p.image_install_body(f"http://192.0.2.1/images/{s}", "0" * 32, "bootflash:x.bin"),
    "file-transfer": lambda s: p.file_transfer_body(f"http://192.0.2.1/files/{s}", "bootflash:guest-share/a"),
    "config-upgrade": lambda s: p.config_upgrade_body(f"http://192.0.2.1/configs/{s}", "abc"),
    "device-info": lambda s: p.device_info_body("all"),
}


@pytest.mark.parametrize("service", sorted(BODIES))
def test_requests_are_the_bytes_xmltodict_wrote(service):
    body = BODIES[service](NASTY)
    udi, correlator = f"PID:C1131-8PWB,VID:V01,SN:{NASTY}", f"CiscoPnP-1.0-{NASTY}"
    assert p.build_request(udi, correlator, service, body) == _reference(udi, "request", service, correlator, body)


def test_bye_and_backoff_are_the_bytes_xmltodict_wrote():
    udi = "PID:C1131-8PWB,VID:V01,SN:FGL2231X0AB"
    assert p.build_bye(udi, "C-1") == _reference(udi, "info", "work-info", "C-1", {"workInfo": {"bye": None}})
    assert "<bye/>" in p.build_bye(udi, "C-1")
    built = p.build_backoff(udi, "C-2", 3725, NASTY)
    assert built == _reference(udi, "request", "backoff", "C-2", {"backoff": {
        "reason": NASTY, "callbackAfter": {"hours": "1", "minutes": "2", "seconds": "5"}}})


def test_random_text_builds_the_same_bytes():
    rng = random.Random(10)
    alphabet = "ab <>&'\t\n\r/=;:☃é]"  # no double quote: xmltodict then switches to single quotes
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        body = p.cli_exec_body(text)
        assert p.build_request(text, text, "cli-exec", body) == _reference(text, "request", "cli-exec", text, body)
