"""API tests generated from /api/v1/openapi.json by schemathesis: every operation, with
generated parameters and bodies, answers what the document says (status, content type,
schema) and never a 5xx — through the real app on a real SQLite file, with seeded devices.

Hypothesis runs a bounded number of examples per operation (``max_examples``); the app is
built once for the module so the suite stays quick.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.pnp import service
from simulator import SimulatedDevice

TOKEN = "schemathesis-token-0123456789"


@pytest.fixture(scope="module")
def api_app(tmp_path_factory):
    import shutil

    from app import create_app
    from app.config import Config
    from tests.helpers import FAST_SETTINGS, ROOT

    root = tmp_path_factory.mktemp("lab")
    for name in ("images", "configs", "files", "logs"):
        (root / name).mkdir()
    shutil.copy(ROOT / "configs" / "default.cfg", root / "configs" / "default.cfg")
    values = {k.lower(): v for k, v in FAST_SETTINGS.items()}
    values.update(root=root, database_url=f"sqlite:///{root / 'pnp.sqlite3'}", admin_token=TOKEN,
                  webhook_dispatcher=False, api_rate_limit="")
    app = create_app(Config.load(None, env={}, resolve_images=False, **values), migrate=True)
    app.config["TESTING"] = True
    client = app.test_client()
    for i in range(3):
        xml = SimulatedDevice("http://127.0.0.1:9", f"FGL0S{i:04d}").work_request_xml("CiscoPnP-1.0-T1-2")
        client.post("/pnp/WORK-REQUEST", data=xml, content_type="text/xml")
    service.set_state(app.extensions["pnp_sessions"], "FGL0S0001", "ERROR")
    yield app
    app.extensions["pnp_engine"].dispose()


def _excluded_checks(operation) -> list:
    """The inventory import takes CSV text: JSON Schema cannot say which text is a valid inventory
    (a ``serial`` column, serials, templates), so a schema-valid body is rightly refused with 400 and
    "positive data accepted" is not asked of it. Its 400 answer is still checked against the
    document (ImportRejected), and the CSV rules by tests/api/test_api.py and tests/ops/test_inventory.py."""
    if operation.label == "POST /api/v1/inventory":
        return [positive_data_acceptance]
    return []


def test_every_operation_answers_as_documented(api_app):
    """Each operation of the document, positive and negative generated cases (schemathesis's
    own strategies, driven by hypothesis here rather than by its pytest plugin)."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    failures = {}
    for operation in operations:
        @settings(max_examples=15, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case):
            if case.meta is not None and case.meta.generation.mode.is_positive and case.query:
                # a keyset cursor is opaque: only the server makes valid ones (a made-up one is a
                # 400, rightly); real cursors are followed in tests/ops/test_keyset.py
                case.query.pop("cursor", None)
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"},
                                   excluded_checks=_excluded_checks(case.operation))

        try:
            check()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())


def test_interactive_api_page_is_served_offline(api_app):
    client = api_app.test_client()
    page = client.get("/api-docs").get_data(as_text=True)
    assert "/static/swagger-ui/swagger-ui-bundle.js" in page and "/api/v1/openapi.json" in page
    assert "http" not in page.split("<body>")[1].replace("http://localhost", ""), "no CDN"
    bundle = client.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.data) > 1_000_000
    bundle.close()
