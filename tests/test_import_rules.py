"""The package's layout keeps its rules: no import circles, no wing imports a wing above it, and every
wing says what it owns. Imports are read with ``ast`` (those inside functions and under
``TYPE_CHECKING`` count too), so a rule broken anywhere fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import ocrpipe

PACKAGE = Path(ocrpipe.__file__).parent
ROOT_MODULES = {"cli", "runner", "__main__"}


def wing_order() -> list[str]:
    """The order written in the package's docstring, lowest first: the one place it is kept."""
    found = re.search(r"^Wings, lowest first: (.+)$", ocrpipe.__doc__ or "", re.MULTILINE)
    assert found, "ocrpipe/__init__.py's docstring must name the wings, lowest first"
    return [w.strip() for w in found.group(1).split(",")]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def wing_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "core"
    if len(parts) == 2 and not (PACKAGE / parts[1]).is_dir():
        return "root" if parts[1] in ROOT_MODULES else "core"
    return parts[1]


def imports_of(path: Path, module: str, known: set[str]) -> set[str]:
    """The package's modules that ``module`` imports, wherever in the file."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base in known:
                found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {m: imports_of(p, m, known) for m, p in files.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def upward_imports(graph: dict[str, set[str]], order: list[str]) -> list[str]:
    rank = {wing: n for n, wing in enumerate(order)}
    return [f"{m} ({wing_of(m)}) imports {d} ({wing_of(d)})"
            for m, deps in sorted(graph.items()) for d in sorted(deps)
            if rank[wing_of(d)] > rank[wing_of(m)]]


def test_every_wing_is_in_the_order() -> None:
    order = wing_order()
    wings = {wing_of(m) for m in import_graph()}
    assert wings <= set(order), f"wings missing from the order in ocrpipe/__init__.py: {wings - set(order)}"


def test_no_import_circles() -> None:
    assert circles(import_graph()) == []


def test_no_wing_imports_a_wing_above_it() -> None:
    assert upward_imports(import_graph(), wing_order()) == []


def test_worker_side_imports_nothing_of_the_engine() -> None:
    graph = import_graph()
    bad = [f"{m} imports {d}" for m, deps in graph.items() if wing_of(m) in {"stages", "tools"}
           for d in deps if wing_of(d) in {"engine", "cluster", "web", "ops", "root"}]
    assert bad == []


def test_every_wing_says_what_it_owns() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc.split()) >= 8, f"{init} needs a docstring saying what the wing owns"


def test_the_checks_catch_a_broken_rule() -> None:
    """The checks above find what they look for: a circle and an upward import in a made-up graph."""
    graph = {"ocrpipe.folders.store": {"ocrpipe.engine.scheduler"},
             "ocrpipe.engine.scheduler": {"ocrpipe.folders.store"},
             "ocrpipe.stages.ocr": {"ocrpipe.model"}, "ocrpipe.model": set()}
    assert circles(graph) == [["ocrpipe.engine.scheduler", "ocrpipe.folders.store"]]
    assert upward_imports(graph, wing_order()) == [
        "ocrpipe.folders.store (folders) imports ocrpipe.engine.scheduler (engine)"]
