"""The package's architecture, checked from the source: one-way layers, no import cycles, light entry points.

Every import counts, also one inside a function (a cycle hidden behind a function-level
import is still a cycle). The layers, lowest first:

    core  <  schedules, data  <  model  <  training  <  measure  <  app

A module may import its own layer and lower ones; `schedules` and `data` do not import each other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "segmentation"
RANK = {"core": 0, "schedules": 1, "data": 1, "model": 2, "training": 3, "measure": 4, "app": 5}
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


@pytest.mark.unit
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


@pytest.mark.unit
def test_there_is_no_import_cycle():
    edges = seg_edges()
    # a package's __init__ importing its own submodules is how registries load; a submodule importing its
    # package (for the registry) must not make that a cycle, so only edges between modules are followed
    # with the package -> submodule direction dropped
    edges = {m: {i for i in imported if not i.startswith(m + ".")} for m, imported in edges.items()}
    assert find_cycle(edges) == []


@pytest.mark.unit
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


@pytest.mark.unit
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


INTERNALS = "segmentation.core.internals"  # the one door to private names of Lightning, torch and MONAI
THIRD_PARTY = ("lightning", "torch", "monai", "pytorch_lightning", "jsonargparse")


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__")) or name == "__dict__"


def names_defined(tree: ast.AST) -> set[str]:
    """Every name a source defines: functions, classes, arguments, assigned names and attributes, imports."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            found.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found.add(node.target.id)
        elif isinstance(node, ast.alias) and not is_private(node.name):
            found.add(node.asname or node.name.split(".")[0])
    return found


def private_names_used(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of each private attribute read, `getattr`-style string, or private import of a third party."""
    used = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            used.append((node.lineno, node.attr))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "getattr", "setattr", "hasattr", "delattr") and len(node.args) > 1:
            name = node.args[1]
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and is_private(name.value):
                used.append((node.lineno, name.value))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in THIRD_PARTY:
            used += [(node.lineno, alias.name) for alias in node.names if is_private(alias.name)]
    return used


def foreign_private_uses(sources: dict[str, str]) -> list[str]:
    """Uses of private names that no seg source defines (so they belong to a library), outside the internals."""
    trees = {name: ast.parse(text) for name, text in sources.items()}
    ours = set().union(*(names_defined(tree) for tree in trees.values())) - {"__dict__"}
    return [f"{name}:{line} uses {used}" for name, tree in trees.items() if name != INTERNALS
            for line, used in private_names_used(tree) if used not in ours]


@pytest.mark.unit
def test_only_the_internals_module_names_private_attributes_of_libraries():
    sources = {name: path.read_text() for name, path in seg_modules().items()}
    assert foreign_private_uses(sources) == []


@pytest.mark.unit
def test_the_private_name_check_finds_library_privates_and_spares_seg_own():
    sources = {
        "segmentation.a": "class A:\n    def __init__(self):\n        self._mine = 1\n    def f(self, x):\n"
                          "        return self._mine + x._last_lr + getattr(x, '_leave') + len(x.__dict__)\n",
        "segmentation.b": "from torch.optim.lr_scheduler import _LRScheduler\n",
        INTERNALS: "def g(x):\n    return x._last_lr\n",
    }
    assert sorted(foreign_private_uses(sources)) == ["segmentation.a:5 uses __dict__", "segmentation.a:5 uses _last_lr",
                                                     "segmentation.a:5 uses _leave",
                                                     "segmentation.b:1 uses _LRScheduler"]


@pytest.mark.unit
def test_no_class_overrides_a_private_method_of_a_library_outside_the_internals():
    import importlib
    import inspect

    overrides = []
    for name in seg_modules():
        if name == INTERNALS or name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        for cls in [c for c in vars(module).values() if inspect.isclass(c) and c.__module__ == name]:
            for attribute in [a for a in vars(cls) if a.startswith("_") and not a.startswith(("__", "_abc_"))]:
                foreign = [b for b in cls.__mro__[1:] if not b.__module__.startswith("segmentation")
                           and hasattr(b, attribute)]
                if foreign:
                    overrides.append(f"{name}.{cls.__name__}.{attribute} overrides {foreign[0].__qualname__}'s")
    assert overrides == []
