"""Hold the repository's imports to its architecture: no cycle anywhere, no import from a lower
layer up.

    python -m tools.import_layers [ROOT]     (make lint runs it)

Every import statement counts, the ones inside functions and under TYPE_CHECKING too: a lazy
import is still a dependency a reader has to follow. `pipeline/` is layered, lowest first:

    core        settings, logs, progress, timings, metrics, the run folder, the warehouse
    ingest      raw files in: layouts, reading, validation, loading, model inputs
    models      the model contract and every model family
    training    the trainer and the production recipe (imports models' contract)
    evaluation  splits, protocols, the champion rule, forward evaluation
    serving     scoring, publishing, the serving file, the pages people read
    stages      one module per task of the job, and the CLI

A module may import its own package and the packages below it. `pipeline` imports nothing of
`ops`, `dags`, `tools`, `tests` or `bench`; `ops` may import `pipeline`; the DAG files may
import `pipeline` and `ops`. Exits 1 and names each offending import (file, line, rule).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

LAYERS = ("core", "ingest", "models", "training", "evaluation", "serving", "stages")
# top-level packages and what each may import (besides itself); tests and bench may import anything
MAY_IMPORT = {
    "pipeline": set(),
    "ops": {"pipeline"},
    "dags": {"pipeline", "ops"},
    "tools": set(),
}
SKIP = {".venv", "venv", ".git", "__pycache__", "node_modules", ".airflow", "var", "warehouse"}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the repository module it resolves to
    path: Path
    line: int


def modules(root: Path) -> dict[str, Path]:
    """Every Python module under `root`, by dotted name (a package by its __init__)."""
    found: dict[str, Path] = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if SKIP & set(rel.parts):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found[".".join(parts)] = path
    return found


def imports(root: Path) -> tuple[dict[str, Path], list[Import]]:
    """The modules and every import between them (resolved to the longest module name that exists)."""
    mods = modules(root)

    def resolve(name: str) -> str | None:
        while name:
            if name in mods:
                return name
            name = name.rpartition(".")[0]
        return None

    edges: list[Import] = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)] if package else []
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" if base else a.name for a in node.names]
            else:
                continue
            for target in targets:
                resolved = resolve(target)
                if resolved and resolved != name:
                    edges.append(Import(name, resolved, path, node.lineno))
    return mods, edges


def cycles(names: list[str], edges: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), a package's __init__
    importing its own submodule excepted."""
    graph: dict[str, set[str]] = {n: set() for n in names}
    for e in edges:
        graph[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in names:
        if v not in index:
            visit(v)
    return [c for c in found if not (len(c) == 2 and c[1].startswith(c[0] + "."))]


def layer_of(module: str) -> int | None:
    """The index of a pipeline module's layer (None: pipeline's own __init__, or not pipeline)."""
    parts = module.split(".")
    if parts[0] != "pipeline" or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def violations(edges: list[Import]) -> list[str]:
    """Each import that runs from a lower layer up, or between top-level packages that may not."""
    out = []
    for e in edges:
        top_source, top_target = e.source.split(".")[0], e.target.split(".")[0]
        where = f"{e.path}:{e.line}: {e.source} imports {e.target}"
        if top_source != top_target:
            if top_source in MAY_IMPORT and top_target not in MAY_IMPORT[top_source]:
                out.append(f"{where}: {top_source} may not import {top_target}")
            continue
        if top_source != "pipeline":
            continue
        source, target = layer_of(e.source), layer_of(e.target)
        if source is not None and target is not None and target > source:
            out.append(f"{where}: {LAYERS[source]} is below {LAYERS[target]}, so it may not import it")
    return out


def _unlayered(module: str) -> bool:
    """A module of pipeline/ outside every layer's package (pipeline's own __init__ aside)."""
    parts = module.split(".")
    return parts[0] == "pipeline" and len(parts) > 1 and parts[1] not in LAYERS


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0] if args else ".").resolve()
    mods, edges = imports(root)
    found = cycles(sorted(mods), edges)
    outside = [
        f"{path}: {name} is in no layer ({', '.join(LAYERS)})" for name, path in mods.items() if _unlayered(name)
    ]
    problems = [f"import cycle: {' <-> '.join(c)}" for c in found] + outside + violations(edges)
    for problem in problems:
        print(problem)
    print(
        f"{len(mods)} modules, {len(edges)} imports: {len(found)} cycles, {len(outside)} modules outside the layers, "
        f"{len(problems) - len(found) - len(outside)} forbidden imports"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
