"""The package's layers, checked on its import graph (imports inside functions included, and the packages
Python imports on the way to a module).

Imports point down only. The core builds and loads models; `data` prepares samples; `eval` and `train`
use both (never each other); `chat` uses eval's tasks; the plugins (`tiny`, the tiny backbones, and
`shapes`, the synthetic world) register parts and are reached only through registries: nothing but
another plugin imports them. The top (command line, recipes, the parts catalogue, benchmarks) may use
everything but the plugins.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "vlm"
CORE = ("registry", "cache", "extras", "attention", "config", "modeling", "processing", "layout", "templates", "hub",
        "build", "published", "export", "info", "lm", "losses", "vision", "projectors", "highres")
LAYERS: dict[str, tuple[str, ...]] = {  # layer -> the top-level names of vlm it holds
    "core": CORE,
    "data": ("data",),
    "train": ("train",),
    "eval": ("eval",),
    "chat": ("chat",),
    "tiny": ("tiny",),
    "shapes": ("shapes",),
    "top": ("cli", "commands", "recipes", "studies", "parts", "benchmarks"),
}
MAY_IMPORT: dict[str, set[str]] = {  # layer -> layers it may import besides its own
    "core": set(),
    "data": {"core"},
    "eval": {"core", "data"},
    "train": {"core", "data"},
    "chat": {"core", "data", "eval"},
    "shapes": {"core", "data", "train", "eval"},
    "tiny": {"core", "data", "train", "eval", "shapes"},
    "top": {"core", "data", "train", "eval", "chat"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(tree: ast.AST, modules: set[str], here: str, is_package: bool) -> set[str]:
    """The vlm modules a file imports when it runs (anywhere, functions included; not under TYPE_CHECKING),
    with the packages Python imports on the way (the root ``vlm`` package aside)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = here if is_package else here.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}".rstrip(".")
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    out = set()
    for name in found:
        parts = name.split(".")
        out.update(".".join(parts[:k]) for k in range(2, len(parts) + 1) if ".".join(parts[:k]) in modules)
    out.discard(here)
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(files)
    return {
        name: imported(ast.parse(path.read_text()), modules, name, path.name == "__init__.py")
        for name, path in files.items()
    }


def layer_of(module: str) -> str | None:
    if module == "vlm":
        return None
    top = module.split(".")[1]
    return next((layer for layer, names in LAYERS.items() if top in names), "unlisted")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                connect(w)
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

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return found


def test_the_import_graph_has_no_cycle():
    assert cycles(graph()) == []


def test_every_module_belongs_to_a_layer():
    assert [m for m in graph() if layer_of(m) == "unlisted"] == []


def test_imports_point_down_the_layers():
    wrong = []
    for module, targets in graph().items():
        layer = layer_of(module)
        for target in targets:
            other = layer_of(target)
            if layer and other and other != layer and other not in MAY_IMPORT[layer]:
                wrong.append(f"{module} ({layer}) imports {target} ({other})")
    assert wrong == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
