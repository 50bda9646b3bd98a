"""Hostile input against every route: corpus + hypothesis, Flask test client and real server.

Rules checked for every input (docs/protocol.md pitfall P5):

* never a 5xx, never an empty body on a PnP route that answered 200;
* a clear 4xx (400/404/405/413) for anything that is not a PnP message;
* a rejected message changes nothing (device_state and device_event unchanged);
* nothing outside images/, configs/, files/ is ever served, nor hidden files.

The corpus is in ``tests/pnp/fuzz_corpus/`` (one hostile body per file, plus
``paths.txt`` for the file routes); very large bodies are generated here.
The total number of inputs tried is printed (``-s``) for RELIABILITY.md.
"""

from __future__ import annotations

import os
import random
import re
import socket
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.helpers import FIXTURES

CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
WR = (FIXTURES / "wr_csr1000v_iosxe-17.3.4a_reload-reason.xml").read_text()
RESP = (FIXTURES / "resp_device-info-all_csr1000v_iosxe-17.3.4a.xml").read_text()
PNP_POST_ROUTES = ("/pnp/WORK-REQUEST", "/pnp/WORK-RESPONSE")
FILE_AREAS = ("images", "configs", "files")
SECRET = b"TOP-SECRET-OUTSIDE-SERVED-FOLDERS"
FUZZ_EXAMPLES = int(os.environ.get("PNP_FUZZ_EXAMPLES", "150"))
TRIED = {"inputs": 0, "5xx": 0}
HYPO = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


def corpus_bodies() -> dict[str, bytes]:
    """Every hostile body: the files in the corpus plus generated large ones."""
    bodies = {p.name: p.read_bytes() for p in sorted(CORPUS.iterdir())
              if p.is_file() and p.name != "paths.txt"}
    bodies["huge_serial"] = WR.replace("99CWJ5DOLWQ", "S" * 100_000).encode()
    bodies["long_serial_65"] = WR.replace("99CWJ5DOLWQ", "S" * 65).encode()
    bodies["huge_correlator"] = WR.replace("CiscoPnP-1.0-R33.200930-I1-P592-T43891-2",
                                           "C" * 200_000).encode()
    bodies["huge_pid"] = WR.replace("PID:CSR1000V", "PID:" + "P" * 50_000).encode()
    bodies["huge_hostname"] = WR.replace("<hostname>Router</hostname>",
                                         f"<hostname>{'h' * 300_000}</hostname>").encode()
    bodies["just_under_limit"] = (WR[:-7] + "<!--" + "x" * (1024 * 1024 - len(WR) - 20)
                                  + "-->" + "</pnp>").encode()
    return bodies


def corpus_paths() -> list[str]:
    lines = (CORPUS / "paths.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def _counts(app) -> tuple[int, int]:
    with app.extensions["pnp_engine"].connect() as conn:
        return (conn.execute(text("SELECT count(*) FROM device_state")).scalar_one(),
                conn.execute(text("SELECT count(*) FROM device_event")).scalar_one())


def _check_pnp(status: int, body: bytes, label: str) -> None:
    """The rules for a PnP route: no 5xx, 200 only with a non-empty PnP XML body."""
    TRIED["inputs"] += 1
    if status >= 500:
        TRIED["5xx"] += 1
    assert status < 500, f"{label}: HTTP {status} {body[:200]!r}"
    assert status in (200, 400, 405, 413), f"{label}: HTTP {status}"
    if status == 200:
        assert body.strip().startswith(b"<pnp"), f"{label}: 200 without a PnP body: {body[:200]!r}"
    else:
        assert body.strip(), f"{label}: {status} without a reason"


@pytest.fixture
def fuzz_app(app, lab, caplog):
    """The test app with a secret planted next to (not inside) the served folders.

    Fails the test when the last-resort handler caught anything: a hidden
    exception is a bug even though the device saw no 5xx.
    """
    (lab / "secret.txt").write_bytes(SECRET)
    (lab / "images" / ".hidden").write_bytes(SECRET)
    (lab / "configs" / ".md5-cache.json").write_bytes(SECRET)
    yield app
    unexpected = [r.getMessage() for r in caplog.records if "unexpected error" in r.getMessage()
                  or r.name == "app" and r.levelname == "ERROR"]
    assert not unexpected, unexpected[:3]


# --- corpus, test client ------------------------------------------------------------------


@pytest.mark.parametrize("route", PNP_POST_ROUTES)
def test_corpus_never_5xx_and_rejects_without_state_change(fuzz_app, route):
    client = fuzz_app.test_client()
    for name, body in corpus_bodies().items():
        before = _counts(fuzz_app)
        for content_type in ("text/xml", "application/x-www-form-urlencoded", "multipart/form-data"):
            resp = client.post(route, data=body, headers={"Content-Type": content_type})
            _check_pnp(resp.status_code, resp.data, f"{route} {name} {content_type}")
            if resp.status_code != 200:
                assert _counts(fuzz_app) == before, f"{name}: rejected but state changed"
            assert SECRET not in resp.data and b"root:x:0:0" not in resp.data


def test_entity_and_doctype_inputs_are_refused(fuzz_app):
    """DTDs, entities (billion laughs, quadratic blowup) and external entities: 400."""
    client = fuzz_app.test_client()
    for name in ("billion_laughs.xml", "quadratic_blowup.xml", "xxe_file.xml", "xxe_http.xml",
                 "xxe_parameter.xml", "doctype_only.xml"):
        for route in PNP_POST_ROUTES:
            resp = client.post(route, data=(CORPUS / name).read_bytes())
            assert resp.status_code == 400, (name, resp.status_code, resp.data[:200])
            assert b"root:" not in resp.data
    assert _counts(fuzz_app) == (0, 0)


def test_not_pnp_gets_a_clear_400(fuzz_app):
    client = fuzz_app.test_client()
    for name in ("empty.xml", "not_xml.txt", "json.txt", "truncated_half.xml", "wrong_root_ns.xml",
                 "no_ns.xml", "wrong_info_ns.xml", "udi_no_sn.xml", "nul_bytes.bin", "two_roots.xml",
                 "random_bytes.bin"):
        resp = client.post("/pnp/WORK-REQUEST", data=(CORPUS / name).read_bytes())
        assert resp.status_code == 400, (name, resp.status_code)
        assert resp.mimetype == "text/plain" and len(resp.data.strip()) > 5
    for name in ("huge_serial", "long_serial_65", "huge_correlator", "huge_pid"):
        resp = client.post("/pnp/WORK-REQUEST", data=corpus_bodies()[name])
        assert resp.status_code == 400, (name, resp.status_code)
    assert _counts(fuzz_app) == (0, 0)


def test_body_over_limit_is_413(fuzz_app):
    client = fuzz_app.test_client()
    body = WR.encode() + b" " * (1024 * 1024)
    for route in PNP_POST_ROUTES:
        resp = client.post(route, data=body, headers={"Content-Type": "text/xml"})
        assert resp.status_code == 413
    resp = client.post("/pnp/WORK-REQUEST", data=corpus_bodies()["just_under_limit"])
    assert resp.status_code == 200
    assert _counts(fuzz_app)[0] == 1


def test_wrong_methods_and_unknown_routes(fuzz_app):
    client = fuzz_app.test_client()
    for rule in fuzz_app.url_map.iter_rules():
        path = rule.rule.replace("<path:name>", "default.cfg").replace("<name>", "x")
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"):
            resp = client.open(path, method=method, data=b"<x/>")
            TRIED["inputs"] += 1
            assert resp.status_code < 500, (method, path, resp.status_code)
    for path in ("/pnp/", "/pnp/WORK", "/pnp/HELLO/..", "/pnp/WORK-REQUEST/x", "/%00", "/images/",
                 "/" + "a" * 5000):
        assert client.get(path).status_code in (301, 308, 404, 405)


# --- file routes ------------------------------------------------------------------------------


def _check_file(client, lab, area: str, name: str, raw: bool = False) -> None:
    url = f"/{area}/{name}" if raw else f"/{area}/{quote(name, safe='/')}"
    for method in ("GET", "HEAD"):
        resp = client.open(url, method=method)
        TRIED["inputs"] += 1
        assert resp.status_code < 500, (url, resp.status_code)
        assert resp.status_code in (200, 308, 400, 404, 405), (url, resp.status_code)
        assert SECRET not in resp.data and b"root:x:0:0" not in resp.data
        assert b"SQLite format 3" not in resp.data and b"SERVER_IP" not in resp.data
        if resp.status_code == 200 and method == "GET":
            served = {p.read_bytes() for d in FILE_AREAS for p in (lab / d).rglob("*")
                      if p.is_file() and not p.name.startswith(".")}
            assert resp.data in served, url


def test_path_traversal_corpus(fuzz_app, lab):
    client = fuzz_app.test_client()
    (lab / "settings_x.py").write_text("SERVER_IP = '127.0.0.1'\n")
    for area in FILE_AREAS:
        for name in corpus_paths():
            _check_file(client, lab, area, name)
            _check_file(client, lab, area, name, raw=True)
    assert client.get("/configs/default.cfg").status_code == 200
    assert client.get("/images/.hidden").status_code == 404
    assert client.get("/configs/.md5-cache.json").status_code == 404


@HYPO
@given(name=st.text(min_size=1, max_size=80), area=st.sampled_from(FILE_AREAS))
def test_file_names_hypothesis(fuzz_app, lab, name, area):
    _check_file(fuzz_app.test_client(), lab, area, name)


# --- hypothesis on PnP bodies ----------------------------------------------------------------


@HYPO
@given(body=st.binary(max_size=4096), route=st.sampled_from(PNP_POST_ROUTES))
def test_random_bytes(fuzz_app, body, route):
    before = _counts(fuzz_app)
    resp = fuzz_app.test_client().post(route, data=body)
    _check_pnp(resp.status_code, resp.data, route)
    assert resp.status_code == 400 or (resp.status_code == 200 and body)
    if resp.status_code != 200:
        assert _counts(fuzz_app) == before


XML_BITS = ["<", ">", "/", "=", '"', "'", "&", "&amp;", "&#0;", "&#x110000;", "<!--", "]]>",
            "<?", "?>", "xmlns=", ":", "\x00", "\udcff", "\u202e", "\U0001F4A9", " ", "\n"]


@HYPO
@given(data=st.data(), base=st.sampled_from([WR, RESP]), route=st.sampled_from(PNP_POST_ROUTES))
def test_mutated_real_messages(fuzz_app, data, base, route):
    """Real captures with cuts, insertions and replacements at random offsets."""
    text_ = base
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text_)))
        op = data.draw(st.sampled_from(["cut", "insert", "delete", "truncate"]))
        if op == "truncate":
            text_ = text_[:pos]
        elif op == "delete":
            text_ = text_[:pos] + text_[pos + data.draw(st.integers(1, 40)):]
        else:
            bit = data.draw(st.sampled_from(XML_BITS) | st.text(max_size=20))
            text_ = text_[:pos] + bit + text_[pos:] if op == "insert" else text_[:pos] + bit
    body = text_.encode("utf-8", "surrogatepass")
    before = _counts(fuzz_app)
    resp = fuzz_app.test_client().post(route, data=body)
    _check_pnp(resp.status_code, resp.data, route)
    if resp.status_code != 200:
        assert _counts(fuzz_app) == before


def _xml_attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


XML_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff",
                          max_codepoint=0x10FFFF).filter(lambda c: c >= " " or c in "\t\n\r")


@HYPO
@given(pid=st.text(XML_CHARS, max_size=70), vid=st.text(XML_CHARS, max_size=20),
       sn=st.text(XML_CHARS, max_size=70), correlator=st.text(XML_CHARS, max_size=300),
       hostname=st.text(XML_CHARS, max_size=300), service=st.text(XML_CHARS, max_size=40),
       success=st.sampled_from(["1", "0", "true", "", "2", "yes"]))
def test_wellformed_messages_with_odd_values(fuzz_app, pid, vid, sn, correlator, hostname,
                                             service, success):
    """Well-formed envelopes, hostile attribute values: 200 PnP XML or a clear 400."""
    client = fuzz_app.test_client()
    udi = _xml_attr(f"PID:{pid},VID:{vid},SN:{sn}")
    wr = WR.replace('udi="PID:CSR1000V,VID:V00,SN:99CWJ5DOLWQ"', f'udi="{udi}"')
    wr = wr.replace("CiscoPnP-1.0-R33.200930-I1-P592-T43891-2", _xml_attr(correlator))
    wr = wr.replace("<hostname>Router</hostname>",
                    f"<hostname>{_xml_attr(hostname).replace('>', '&gt;')}</hostname>")
    resp = client.post("/pnp/WORK-REQUEST", data=wr.encode())
    _check_pnp(resp.status_code, resp.data, "work-request")
    ns = _xml_attr(f"urn:cisco:pnp:{service}")
    body = (f'<pnp xmlns="urn:cisco:pnp" version="1.0" udi="{udi}"><response xmlns="{ns}" '
            f'correlator="{_xml_attr(correlator)}" success="{success}"/></pnp>')
    resp = client.post("/pnp/WORK-RESPONSE", data=body.encode())
    _check_pnp(resp.status_code, resp.data, "work-response")


def test_report_inputs_tried(capsys):
    """Prints the figures for RELIABILITY.md (runs last in this module)."""
    with capsys.disabled():
        print(f"\nfuzz (test client): {TRIED['inputs']} inputs tried, {TRIED['5xx']} 5xx")
    assert TRIED["5xx"] == 0


# --- the real server (gunicorn), a smaller set --------------------------------------------------


def _raw_http(port: int, payload: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


@pytest.mark.e2e
def test_real_server_corpus_and_broken_http(start_server, lab):
    (lab / "secret.txt").write_bytes(SECRET)
    server = start_server(WORKERS=2)
    server_log_start = server.log.stat().st_size if server.log.exists() else 0
    port = int(server.url.rsplit(":", 1)[1])
    http = requests.Session()
    http.trust_env = False
    rng = random.Random(6)
    tried = 0
    for name, body in corpus_bodies().items():
        for route in PNP_POST_ROUTES:
            resp = http.post(server.url + route, data=body, timeout=30)
            tried += 1
            _check_pnp(resp.status_code, resp.content, f"real {route} {name}")
    resp = http.post(server.url + "/pnp/WORK-REQUEST", data=b"x" * (1024 * 1024 + 1), timeout=30,
                     headers={"Connection": "close"})  # the unread body ends the connection
    assert resp.status_code == 413
    for area in FILE_AREAS:
        for name in corpus_paths():
            for url in (f"{server.url}/{area}/{quote(name, safe='/')}", f"{server.url}/{area}/{name}"):
                try:
                    resp = http.get(url, timeout=30)
                except requests.exceptions.InvalidURL:
                    continue
                tried += 1
                assert resp.status_code < 500 and SECRET not in resp.content, url
                assert b"SERVER_IP" not in resp.content and b"SQLite format 3" not in resp.content
    # Broken HTTP: lying Content-Length, garbage request lines, raw traversal, slow bodies.
    raw = [
        b"POST /pnp/WORK-REQUEST HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n<pnp",
        b"POST /pnp/WORK-REQUEST HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /pnp/WORK-REQUEST HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /pnp/WORK-REQUEST HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"100000\r\n" + b"a" * 0x100000 + b"\r\n100\r\n" + b"a" * 0x100 + b"\r\n0\r\n\r\n",
        b"GET /configs/../settings_x.py HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /configs/..%2f..%2fsecret.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /files/%2e%2e/secret.txt HTTP/1.0\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(rng.randrange(256) for _ in range(500)),
        b"GARBAGE\r\n\r\n",
        b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"b" * 20000 + b"\r\n\r\n",
        bytes(rng.randrange(256) for _ in range(2000)),
    ]
    for payload in raw:
        answer = _raw_http(port, payload)
        tried += 1
        status_line = answer.split(b"\r\n", 1)[0]
        assert not re.match(rb"HTTP/1\.[01] 5", status_line), (payload[:60], status_line)
        assert SECRET not in answer and b"SERVER_IP" not in answer
    # the server is still alive and answers a real device
    assert http.get(server.url + "/pnp/HELLO", timeout=10).status_code == 200
    resp = http.post(server.url + "/pnp/WORK-REQUEST", data=WR.encode(), timeout=30)
    assert resp.status_code == 200 and b"urn:cisco:pnp" in resp.content
    server_log = server.output()[server_log_start:]
    assert "Traceback" not in server_log and "unexpected error" not in server_log, server_log[-3000:]
    print(f"\nfuzz (real server): {tried} inputs tried, 0 5xx")
