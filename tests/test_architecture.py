"""The layout is the design: no import circles and no import back up the layers.

Plain Python over ``app/`` with ``ast``: every ``import``/``from … import`` of an
``app.*`` module, wherever it stands in the file (functions too), is an edge.
Layers, lowest first (a module may import its own layer or lower ones):

0. ``app.common`` (pure helpers), ``app.pnp.protocol`` (PnP XML)
1. ``app.config``, ``app.dhcp`` (the DHCP library), ``app.sot.mapping`` (source-of-truth field map)
2. storage, the workflow, day-0 rendering and URL signing, Juniper ZTP parsing, log set-up
3. services that apply decisions (``app.pnp.service``, ``app.ztp.service``), metrics
4. the operator layer (``app.ops``, ``app.sot``: sources, sync, write-back, webhooks)
5. HTTP: blueprints (``app.pnp.routes``, ``app.files.routes``, ``app.ztp.routes``,
   ``app.console``, ``app.api``, ``app.observability.health``)
6. ``app`` (``create_app``)
7. ``app.cli`` (every command of run.py)
"""

from __future__ import annotations

import ast
import gc
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"

LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (0, ("app.common", "app.pnp.protocol")),
    (1, ("app.config", "app.dhcp", "app.sot.mapping")),
    (2, ("app.storage", "app.pnp.workflow", "app.files.day0", "app.files.signing", "app.files.serving",
         "app.ztp.juniper", "app.ztp.token", "app.observability.logs")),
    (3, ("app.pnp.service", "app.pnp.source", "app.ztp.service", "app.observability.metrics")),
    (4, ("app.ops", "app.sot")),
    (5, ("app.pnp.routes", "app.files.routes", "app.ztp.routes", "app.console", "app.api",
         "app.observability.health")),
    (7, ("app.cli",)),
]
PACKAGES_WITHOUT_CODE = {"app.pnp", "app.files", "app.ztp", "app.observability", "app.storage", "app.common"}


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    if module == "app":
        return 6
    best = None
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), layer)
    assert best is not None, f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}"
    return best[1]


def resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _parse(path: Path) -> ast.AST:
    """``ast.parse`` with the garbage collector paused: CPython 3.11.7 can raise "AST
    constructor recursion depth mismatch" (a SystemError) late in a long test run; parsing
    with no collection in the middle avoids it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(path.read_text(), str(path))
    finally:
        if enabled:
            gc.enable()


def imports() -> dict[str, set[str]]:
    """``module -> {app modules it imports}`` for every module under app/."""
    modules = {module_name(p): p for p in APP.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve(module, node, path.name == "__init__.py")
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for name in names:
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name.startswith("app") and name != module:
                    targets.add(name)
        graph[module] = targets
    return graph


def test_every_module_has_a_layer():
    for module in imports():
        if module not in PACKAGES_WITHOUT_CODE:
            layer_of(module)


def test_no_import_goes_up_a_layer():
    upward = [f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
              for m, targets in imports().items() for t in targets
              if t not in PACKAGES_WITHOUT_CODE and m not in PACKAGES_WITHOUT_CODE
              and layer_of(t) > layer_of(m)]
    assert not upward, "\n".join(upward)


def test_no_import_circles():
    graph = imports()
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target):] + [node, target]) if target in stack
                              else f"{node} -> {target}")
            elif target not in state:
                visit(target, stack + [node])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not cycles, "\n".join(cycles)


def test_the_checks_can_fail():
    """The graph really sees imports: create_app imports its blueprints, the workflow the protocol."""
    graph = imports()
    assert "app.pnp.routes" in graph["app"]
    assert "app.pnp.protocol" in graph["app.pnp.workflow"]
    assert layer_of("app.cli.commands") > layer_of("app") > layer_of("app.console.routes")
