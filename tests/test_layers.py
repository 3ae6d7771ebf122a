"""The package's layer order (docs/architecture.md): lower layers never import higher ones, and no
module imports itself back through others, counting imports inside functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "segattn"

#: Bottom to top. A module may import its own layer and the layers below it.
LAYERS = [
    {"segattn", "segattn.errors", "segattn.checkpoint", "segattn.files", "segattn.values"},
    {"segattn.models"},
    {"segattn.metrics", "segattn.inference"},
    {"segattn.figures", "segattn.data"},
    {"segattn.export"},
    {"segattn.training"},
    {"segattn.config"},
    {"segattn.cli"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of a module: that of its longest listed prefix."""
    best, found = -1, None
    for index, layer in enumerate(LAYERS):
        for name in layer:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, found = len(name), index
    if found is None:
        raise AssertionError(f"{module} belongs to no layer: add its package to LAYERS")
    return found


def imports_of(path: Path) -> set[str]:
    """segattn modules imported anywhere in the file (top level and inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("segattn") and node.level == 0:
            for alias in node.names:  # "from segattn.models import settings" imports a module too
                candidate = f"{node.module}.{alias.name}"
                names.add(
                    candidate
                    if (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists()
                    else node.module
                )
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("segattn"))
    return names


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}
    assert len(modules) > 50, f"found only {len(modules)} modules under {PACKAGE}"
    return modules


def test_no_module_imports_a_higher_layer():
    inversions = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in graph().items()
        for target in targets
        if layer_of(target) > layer_of(module)
    ]
    assert not inversions, "\n".join(inversions)


def test_no_import_cycle_between_modules():
    edges = {m: {t for t in ts if t != m and not m.startswith(t + ".")} for m, ts in graph().items()}
    # a package's __init__ re-exports its modules: an edge into the package is an edge into them
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt in edges and state.get(nxt) is None:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = 2
        stack.pop()
        return None

    for start in edges:
        if state.get(start) is None:
            cycle = visit(start)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_layer_check_catches_an_inversion(tmp_path, monkeypatch):
    """The checks above fail on a model module that imports the training layer."""
    fake = {"segattn.models.bad": {"segattn.training.module"}}
    inversions = [t for m, ts in fake.items() for t in ts if layer_of(t) > layer_of(m)]
    assert inversions == ["segattn.training.module"]


@pytest.mark.parametrize("module", ["segattn.export.exported_model", "segattn.models", "segattn.inference"])
def test_running_an_exported_model_needs_neither_lightning_nor_training(module):
    code = (
        f"import sys, {module}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')\n"
        "             or m.startswith('segattn.training')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]", out.stdout
