"""A bounded coverage-guided fuzz run (atheris) of the PnP, option-43 and inventory parsers.

fuzz/parsers.py runs for a few seconds over the three targets; any exception
other than the documented clear errors (PnpParseError, ValueError for option
43, none for the inventory) stops it with a non-zero exit and the input. The
long run (1,000,000+ executions) is recorded in RELIABILITY.md.
"""

from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers import ROOT


def test_bounded_fuzz_run_finds_no_crash(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "fuzz" / "parsers.py"), "--target", "all",
                           "-max_total_time=8", "-seed=1", f"-artifact_prefix={tmp_path}/"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    runs = re.search(r"Done (\d+) runs", output)
    assert runs and int(runs.group(1)) > 1000, output[-2000:]
    assert not list(tmp_path.glob("crash-*"))


def test_inventory_csv_with_a_bare_carriage_return_is_an_error_not_an_exception():
    """Found by the fuzzer: csv.Error escaped parse_inventory_csv (a 500 on an import)."""
    from app.common.inventory_csv import parse_inventory_csv

    rows, errors = parse_inventory_csv("mac,hostname,mo\x00GET / HTTP/1.1\rst: x\rdel\n", key="mac")
    assert rows == [] and errors and "cannot be read" in errors[0]
