"""Imports flow one way: each module imports only from its own layer or lower ones, and no modules import
each other in a circle. Every import counts, those inside functions too: a deferred import still ties the
two modules together, it only hides the tie from the reader."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vitdsl"

# The one statement of the order, lowest first. A module belongs to the first entry that is its name or a
# package around it; "vitdsl" (the package API) takes what no other entry claims.
LAYERS = [
    {"vitdsl.errors", "vitdsl.torchfile", "vitdsl.stfile", "vitdsl.picklescan"},
    {"vitdsl.blocks"},
    {"vitdsl.blueprint"},
    {"vitdsl.graph"},
    {"vitdsl.trace", "vitdsl.interop", "vitdsl.probes"},
    {"vitdsl.objectives"},
    {"vitdsl"},
    {"vitdsl.cli", "vitdsl.cli_weights", "vitdsl.cli_graph", "vitdsl.cli_diff", "vitdsl.cli_sweep", "vitdsl.__main__"},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    best = None
    for i, names in enumerate(LAYERS):
        for name in names:
            if module == name or module.startswith(name + "."):
                if best is None or len(name) > best[1]:
                    best = (i, len(name))
    assert best is not None, module
    return best[0]


def imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The vitdsl modules ``module`` imports by name (``from . import x`` counts as module ``x`` when it is
    one, else as the package)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "vitdsl"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "vitdsl":
                continue
            for alias in node.names:
                out.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    out.discard(module)
    return {m for m in out if m in known}


def import_graph() -> nx.DiGraph:
    known = modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for name, path in known.items():
        graph.add_edges_from((name, target) for target in imports(name, path, known))
    return graph


def test_every_module_has_a_layer():
    for name in modules():
        layer(name)


def test_no_upward_imports():
    graph = import_graph()
    upward = sorted(f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
                    for a, b in graph.edges if layer(b) > layer(a))
    print(f"{len(upward)} upward imports", *upward, sep="\n  ")
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph = import_graph()
    # a package's __init__ gathering its submodules is the package speaking for them, not a cycle
    ties = nx.DiGraph((a, b) for a, b in graph.edges if not (b.startswith(a + ".")))
    cycles = sorted(sorted(c) for c in nx.strongly_connected_components(ties) if len(c) > 1)
    print(f"{len(cycles)} import cycles", *(" <-> ".join(c) for c in cycles), sep="\n  ")
    assert cycles == []
