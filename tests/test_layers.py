"""The package's architecture, checked from the source: one-way layers, no import cycles, light entry points.

Every import counts, also one inside a function (a cycle hidden behind a function-level
import is still a cycle). The layers, lowest first:

    core  <  schedules, data  <  model  <  training  <  app

A module may import its own layer and lower ones; `schedules` and `data` do not import each other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "segmentation"
RANK = {"core": 0, "schedules": 1, "data": 1, "model": 2, "training": 3, "app": 4}
HEAVY = ("torch", "lightning", "monai", "tensorboard", "matplotlib", "scipy", "nibabel")
# modules that must import none of HEAVY when loaded (the fast CLI paths and the torch-free layouts)
LIGHT_ENTRY_POINTS = (
    "segmentation.app.main",
    "segmentation.app.commands.synth",
    "segmentation.app.commands.report",
    "segmentation.app.commands.check_data",
    "segmentation.app.commands.estimate",
    "segmentation.data.layouts.brats",
    "segmentation.data.layouts.msd",
    "segmentation.data.layouts.totalseg",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, top_level_only: bool = False) -> set[str]:
    """Modules imported by the file at `path` (seg-relative ones resolved; `from x import y` gives x and x.y)."""
    module, tree = module_name(path), ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(module, node, path.name == "__init__.py")
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def seg_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def seg_edges(top_level_only: bool = False) -> dict[str, set[str]]:
    """module -> the seg modules it imports (a name that is a package's attribute counts as the package)."""
    modules = seg_modules()
    return {name: {imported for imported in imports_of(path, top_level_only) if imported in modules} - {name}
            for name, path in modules.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else "app"  # __main__ and the package root: entry


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{module} ({layer(module)}) imports {imported} ({layer(imported)})"
        for module, imported_set in seg_edges().items()
        for imported in imported_set
        if layer(imported) != layer(module) and RANK[layer(imported)] >= RANK[layer(module)]
    ]
    assert not upward, "\n".join(upward)


def find_cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules, or an empty list."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_there_is_no_import_cycle():
    edges = seg_edges()
    # a package's __init__ importing its own submodules is how registries load; a submodule importing its
    # package (for the registry) must not make that a cycle, so only edges between modules are followed
    # with the package -> submodule direction dropped
    edges = {m: {i for i in imported if not i.startswith(m + ".")} for m, imported in edges.items()}
    assert find_cycle(edges) == []


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def heavy_imports_reached(start: str) -> dict[str, str]:
    """Third-party HEAVY modules reached from `start` through module-level imports: {heavy: via seg module}."""
    modules, edges = seg_modules(), seg_edges(top_level_only=True)
    seen, todo, reached = set(), [start], {}
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for imported in imports_of(modules[module], top_level_only=True):
            root = imported.split(".")[0]
            if root in HEAVY:
                reached.setdefault(root, module)
        parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        todo += [m for m in [*edges[module], *parents] if m in modules]
    return reached


@pytest.mark.parametrize("module", LIGHT_ENTRY_POINTS)
def test_light_entry_points_import_no_heavy_package(module):
    assert heavy_imports_reached(module) == {}


def test_seg_synth_help_loads_neither_lightning_nor_monai():
    """The real command, in a fresh interpreter: what `seg synth --help` imported."""
    code = ("import sys\nfrom segmentation.app.main import main\n"
            "try:\n    main(['synth', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'lightning', 'monai') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert "totalseg" in result.stdout and "brats2023" in result.stdout  # the writers were found
