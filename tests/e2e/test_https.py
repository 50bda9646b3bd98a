"""HTTPS listener: a device provisions over TLS against a CA made here.

The test creates a CA and a server certificate for 127.0.0.1 with
``cryptography``, starts run.py with HTTPS_PORT/TLS_CERT/TLS_KEY/CA_BUNDLE
(a second gunicorn arbiter next to the HTTP one), fetches the CA bundle from
the stable HTTP URL ``/ca/bundle.pem`` like a device following option 43
``T``, and provisions a simulated device over https:// verifying the server
against that bundle. Every URL the server hands out on that listener is https.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulator import SimulatedDevice
from tests.helpers import assert_finished, free_port


def make_ca_and_server_cert(folder: Path, ip: str = "127.0.0.1") -> dict[str, Path]:
    """Write ca.pem, server.pem (leaf + CA chain) and server.key into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PnP test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pnpserver")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip)),
                                                        x509.DNSName("pnpserver")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                              + ca.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    paths["key"].chmod(0o600)
    return paths


@pytest.mark.e2e
def test_device_provisions_over_https(start_server, lab, tmp_path):
    tls = make_ca_and_server_cert(tmp_path / "tls")
    https_port = free_port()
    server = start_server(HTTPS_PORT=https_port, TLS_CERT=str(tls["cert"]), TLS_KEY=str(tls["key"]),
                          CA_BUNDLE=str(tls["ca"]))
    https_url = f"https://127.0.0.1:{https_port}"
    # the device fetches the trustpool over plain HTTP from the option 43 T URL
    bundle = requests.get(server.url + "/ca/bundle.pem", timeout=10)
    assert bundle.status_code == 200 and bundle.content == tls["ca"].read_bytes()
    trustpool = tmp_path / "trustpool.pem"
    trustpool.write_bytes(bundle.content)
    deadline = time.monotonic() + 30
    while True:
        try:
            assert requests.get(https_url + "/pnp/HELLO", verify=str(trustpool), timeout=5).status_code == 200
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    # without the bundle the server is not trusted
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https_url + "/pnp/HELLO", timeout=5)
    assert "K5" in server.output() and f"J{https_port}" in server.output()

    dev = SimulatedDevice(https_url, "FGL2548T001", reload_seconds=0.3, verify=str(trustpool))
    result = {}
    t = threading.Thread(target=lambda: result.__setitem__(dev.serial, dev.run(timeout=90)))
    t.start()
    t.join()
    assert_finished(https_url, f"sqlite:///{lab / 'pnp.sqlite3'}", [dev], result)
    assert dev.downloads and all(u.startswith(https_url + "/") for u in dev.downloads), dev.downloads
    access = (lab / "logs" / "access-https.log").read_text()
    assert "/pnp/WORK-REQUEST" in access
