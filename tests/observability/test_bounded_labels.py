"""Metric labels come from fixed sets: device input cannot grow the number of series.

1,000 work-responses with distinct made-up error codes and service
namespaces (known serial and unknown serials alike) leave the number of
``pnp_errors_total`` / ``pnp_requests_total`` series where it was after the
first few; the known codes keep their own label.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from app.observability.metrics import error_code_label, service_label


def _series(client, name: str) -> set[tuple]:
    text = client.get("/metrics").get_data(as_text=True)
    return {tuple(sorted(s.labels.items())) for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == name}


def _failure(serial: str, service: str, code: str) -> bytes:
    return (f'<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:C1111-4P,VID:V01,SN:{serial}">'
            f'<response xmlns="urn:cisco:pnp:{service}" correlator="c-{code}" success="0">'
            f'<errorInfo><errorSeverity>XSVC_ERROR</errorSeverity><errorCode>{code}</errorCode>'
            f'<errorMessage>made up</errorMessage></errorInfo></response></pnp>').encode()


def test_a_thousand_bogus_codes_add_no_series(client):
    for i in range(5):  # warm up: the "other" series exist now
        assert client.post("/pnp/WORK-RESPONSE", data=_failure(f"BOGUS{i}", f"svc-{i}", f"X {i}")).status_code == 200
    errors, requests_ = _series(client, "pnp_errors_total"), _series(client, "pnp_requests_total")
    for i in range(1000):
        resp = client.post("/pnp/WORK-RESPONSE",
                           data=_failure(f"BOGUS{i % 50}", f"made-up-service-{i}", f"Error {i} {'Z' * (i % 7)}"))
        assert resp.status_code == 200
    assert _series(client, "pnp_errors_total") == errors
    assert _series(client, "pnp_requests_total") == requests_
    assert len(errors) <= 3


def test_known_codes_keep_their_label():
    assert error_code_label("PnP Service Error 1702") == "PnP Service Error 1702"
    assert error_code_label("PnP  Service Error 1803 ") == "PnP Service Error 1803"
    assert error_code_label("PnP Service Error 9999") == "other"
    assert error_code_label("fault") == "fault"
    assert error_code_label(None) == "other"
    assert service_label("image-install") == "image-install"
    assert service_label("image-install\n") == "other"
    assert service_label("x" * 500) == "other"
