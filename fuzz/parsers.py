"""Coverage-guided fuzzing (atheris, libFuzzer) of the parsers that read what devices and operators send.

Targets (``--target``):

* ``pnp``: app/pnp/protocol.py ``parse_work_request`` and ``parse_work_response``
  on the raw bytes; the only exception allowed is ``PnpParseError`` (a clear 400);
* ``option43``: app/dhcp/option43.py ``parse_option43`` on the decoded text;
  only ``ValueError`` (the one-line reason) is allowed;
* ``inventory``: app/common/inventory_csv.py ``parse_inventory_csv`` for both keys;
  it reports problems as errors, so no exception at all is allowed.

Anything else is a crash: atheris stops, prints the input and writes it as
``crash-<sha1>``. Seeds come from simulator/messages/, tests/pnp/fuzz_corpus/
and a few option-43 strings and CSV lines. Usage::

    python3 fuzz/parsers.py --target pnp -atheris_runs=1000000
    python3 fuzz/parsers.py --target all -max_total_time=10     # what the test suite runs

``--target all`` cycles the three targets on the first input byte. The
figures of the long run are in RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import atheris  # noqa: E402

with atheris.instrument_imports(include=["app.pnp.protocol", "app.dhcp.option43", "app.common.inventory_csv",
                                         "app.common.mac", "defusedxml", "xmltodict"]):
    from app.common.inventory_csv import parse_inventory_csv
    from app.dhcp.option43 import parse_option43
    from app.pnp import protocol

OPTION43_SEEDS = ["5A1N;B2;K4;I192.0.2.10;J80", "5A1N;B2;K5;I192.0.2.10;J443;Thttp://192.0.2.10/ca/bundle.pem;Z192.0.2.1",
                  "5A1D;K4;Ipnp.example.net;J8080;", "5A1N;B1;K4;I2001:db8::1"]
CSV_SEEDS = ["serial,hostname,pid,template,mgmt_ip\nFGL2548L0AW,r1,C1111-4P,branch.cfg.j2,192.0.2.5\n",
             "mac,hostname,model,serial,template\naa:bb:cc:dd:ee:ff,sw1,ex4300-48p,PE3714AB0001,default.conf.j2\n",
             "# comment\nserial,hostname\n\"FGL1,x\",r2\n"]


def pnp(data: bytes) -> None:
    for parse in (protocol.parse_work_request, protocol.parse_work_response):
        try:
            parse(data)
        except protocol.PnpParseError:
            pass


def option43(data: bytes) -> None:
    try:
        parse_option43(data.decode("utf-8", "surrogateescape"))
    except ValueError:
        pass


def inventory(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    for key in ("serial", "mac"):
        rows, errors = parse_inventory_csv(text, key=key)
        assert isinstance(rows, list) and isinstance(errors, list)


TARGETS = {"pnp": pnp, "option43": option43, "inventory": inventory}


def everything(data: bytes) -> None:
    if not data:
        return
    list(TARGETS.values())[data[0] % len(TARGETS)](data[1:])


def seed_corpus(target: str) -> str:
    """A temporary folder with the seed inputs of ``target`` (atheris reads and extends it)."""
    folder = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    seeds: list[tuple[int, bytes]] = []
    for path in [*(ROOT / "simulator" / "messages").glob("*.xml"), *(ROOT / "tests" / "pnp" / "fuzz_corpus").iterdir()]:
        if path.is_file():
            seeds.append((0, path.read_bytes()[:60000]))
    seeds += [(1, s.encode()) for s in OPTION43_SEEDS] + [(2, s.encode()) for s in CSV_SEEDS]
    index = list(TARGETS).index(target) if target in TARGETS else None
    for i, (kind, body) in enumerate(seeds):
        if index is None:
            (folder / f"seed{i}").write_bytes(bytes([kind]) + body)
        elif kind == index:
            (folder / f"seed{i}").write_bytes(body)
    return str(folder)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--target", default="all", choices=[*TARGETS, "all"])
    args, rest = parser.parse_known_args(argv[1:])
    corpus = seed_corpus(args.target)
    atheris.Setup([argv[0], *rest, corpus], TARGETS.get(args.target, everything))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
