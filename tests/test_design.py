"""The import structure of docs/design.md, checked from the source: no import circle between modules (imports
inside functions included), and each part imports only what the import-rules table allows."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "inpaintssl"
FOUNDATIONS = {"config", "presets", "errors", "checkpoint", "bundled", "files", ""}
# part -> the parts it may import (docs/design.md, "Import rules"); foundations may import each other only
ALLOWED = {
    "foundations": {"foundations"},
    "data": {"foundations"},
    "gan": {"foundations", "data"},
    "evaluation": {"foundations", "data", "gan"},
    "transfer": {"foundations", "data", "gan", "evaluation.plots"},
    "reproduce": {"foundations", "data", "gan", "evaluation", "transfer"},
    "app": {"foundations", "data", "gan", "evaluation"},
    "cli": {"foundations", "data", "gan", "evaluation", "transfer", "reproduce", "app"},
    "__main__": {"cli"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package's modules it imports (anywhere in the file), relative names resolved."""
    edges = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".") if package else []
                    base = base[:len(base) - node.level + 1]
                    base = ".".join(base + ([node.module] if node.module else []))
                elif (node.module or "").startswith("inpaintssl"):
                    base = node.module.removeprefix("inpaintssl").lstrip(".")
                else:
                    continue
                targets = [f"{base}.{a.name}".lstrip(".") for a in node.names] + [base]
            elif isinstance(node, ast.Import):
                targets = [a.name.removeprefix("inpaintssl").lstrip(".") for a in node.names
                           if a.name.startswith("inpaintssl")]
            for t in targets:
                while t not in mods and "." in t:
                    t = t.rpartition(".")[0]
                if t in mods and t != name and not name.startswith(t + ".") and (t or targets == [""]):
                    found.add(t)
        edges[name] = found
    return edges


def _part(module: str) -> str:
    top = module.split(".")[0]
    return "foundations" if top in FOUNDATIONS else top


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on.discard(group[-1])
            if len(group) > 1:
                out.append(sorted(group))
    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_between_modules():
    edges = _imports(_modules())
    assert sum(map(len, edges.values())) > 150                 # the scan sees the package's imports
    assert "checkpoint" in edges["gan.step"] and "gan.models" in edges["evaluation.bypass"]
    assert _cycles(edges) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]   # the detector works


def test_each_part_imports_only_what_the_design_allows():
    wrong = []
    for module, targets in _imports(_modules()).items():
        part = _part(module)
        for t in targets:
            tp = _part(t)
            if tp != part and tp not in ALLOWED[part] and t not in ALLOWED[part]:
                wrong.append(f"{module} -> {t}")
    assert wrong == []
