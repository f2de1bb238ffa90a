"""The layers of docs/architecture.md hold in the code: no import upward, no import loop."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = {"plba": ROOT / "plba", "mail_order_bot": ROOT / "plugins" / "mail_order_bot" / "mail_order_bot"}
# What any module may take from the package face (see docs/architecture.md).
FROM_FACE = {"__version__"}


def module_files(package: str) -> dict[str, Path]:
    """Every module of `package` by dotted name (the scaffold's template is data, not code)."""
    base = PACKAGES[package]
    found = {}
    for path in sorted(base.rglob("*.py")):
        if "template" in path.relative_to(base).parts:
            continue
        parts = [package, *path.relative_to(base).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(module: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """The modules of `known` that `module` imports, anywhere but under `if TYPE_CHECKING:`, with the line."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = []

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for branch in child.orelse:
                    visit_one(branch)
                continue
            visit_one(child)

    def visit_one(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.extend((target, node.lineno) for alias in node.names if (target := resolve(alias.name)))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                # `from plba import schema` imports the module plba.schema.
                if f"{source}.{alias.name}" in known:
                    found.append((f"{source}.{alias.name}", node.lineno))
                elif source in PACKAGES and alias.name in FROM_FACE:
                    continue
                elif target := resolve(source):
                    found.append((target, node.lineno))
        else:
            visit(node)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return [(target, line) for target, line in found if target != module]


def graph(package: str) -> tuple[dict[str, Path], dict[str, list[tuple[str, int]]]]:
    """The modules of `package` and what each imports."""
    files = module_files(package)
    return files, {module: imports(module, path, set(files)) for module, path in files.items()}


def documented_layers() -> dict[str, int]:
    """Module (or package) -> layer number, from the table in docs/architecture.md."""
    layers = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| (\d+) [^|]+\| ([^|]+) \|", line)
        if match:
            for name in re.findall(r"`([\w.]+)`", match.group(2)):
                layers[name] = int(match.group(1))
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of the longest documented name that is `module` or a package holding it."""
    name = module
    while name:
        if name in layers:
            return layers[name]
        name = name.rpartition(".")[0]
    return None


def test_the_table_is_read() -> None:
    layers = documented_layers()
    assert layers["plba.errors"] == 1 and layers["plba.runtime"] == 5 and layers["plba.cli"] == 6


def test_every_module_has_a_layer() -> None:
    files, _ = graph("plba")
    layers = documented_layers()
    missing = sorted(module for module in files if layer_of(module, layers) is None)
    assert not missing, f"modules missing from the table in {DOC.relative_to(ROOT)}: {', '.join(missing)}"


def test_no_module_imports_a_higher_layer() -> None:
    files, edges = graph("plba")
    layers = documented_layers()
    upward = []
    for module, targets in edges.items():
        mine = layer_of(module, layers)
        for target, line in targets:
            theirs = layer_of(target, layers)
            if mine is not None and theirs is not None and theirs > mine:
                where = files[module].relative_to(ROOT)
                upward.append(f"{where}:{line}: {module} (layer {mine}) imports {target} (layer {theirs})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_loops(package: str) -> None:
    _, edges = graph(package)
    loops = [" -> ".join([*loop, loop[0]]) for loop in cycles({m: [t for t, _ in ts] for m, ts in edges.items()})
             if not within_one_package(loop, set(edges))]
    assert not loops, f"modules of {package} that import each other in a loop:\n" + "\n".join(loops)


def within_one_package(loop: list[str], modules: set[str]) -> bool:
    """Whether `loop` is a package's `__init__.py` and its own modules only (the face handing on its parts)."""
    return any(member in modules and all(other == member or other.startswith(f"{member}.") for other in loop)
               for member in loop)


def cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, []):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return groups


def test_a_loop_and_an_upward_import_are_seen(tmp_path: Path) -> None:
    """The checks find what they look for: a module pair that imports each other, a lazy import upward."""
    source = tmp_path / "lower.py"
    source.write_text("import os\n\ndef later():\n    from plba.runtime import RuntimeManager\n", encoding="utf-8")
    known = {"plba.runtime", "plba.errors"}
    assert imports("plba.errors", source, known) == [("plba.runtime", 4)]
    guarded = tmp_path / "guarded.py"
    guarded.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import plba.runtime\n",
                       encoding="utf-8")
    assert imports("plba.errors", guarded, known) == []
    assert cycles({"a": ["b"], "b": ["a"], "c": ["a"]}) == [["a", "b"]]
    assert within_one_package(["p", "p.impl"], {"p", "p.impl"})
    assert not within_one_package(["p", "p.impl", "q"], {"p", "p.impl", "q"})
