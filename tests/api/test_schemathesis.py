"""schemathesis against /api/v1/openapi.json of the real server, with the API token: every check.

Generated requests (schema-valid and schema-violating) for every operation the
document lists; the run fails on any 5xx, a response that breaks its schema, a
schema-valid request refused, a schema-violating one accepted, a 405 without
``Allow``... (``--checks all``). Generic: it reads whatever the document
describes. tests/api/schemathesis.toml holds the one per-operation setting.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOKEN = "schemathesis-token-0123456789abcdef"


def test_api_passes_every_schemathesis_check(start_server, lab):
    server = start_server(ADMIN_TOKEN=TOKEN, ADMIN_PASSWORD="pw-for-tests")
    config = Path(__file__).with_name("schemathesis.toml")
    proc = subprocess.run(
        [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
         "--config-file", str(config), "run",
         f"{server.url}/api/v1/openapi.json", "-H", f"Authorization: Bearer {TOKEN}", "--checks", "all",
         "--max-examples", "25", "--generation-deterministic", "--request-timeout", "20"],
        capture_output=True, text=True, timeout=600, cwd=lab)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert " passed" in output and "failure" not in output.split("SUMMARY")[-1], output[-3000:]
