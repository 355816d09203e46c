"""The package's layering (docs/design.md, *Layering*): no import cycle, the library never imports
its applications, and ``import superpositional`` and ``python -m superpositional info`` work with the
base dependencies alone.

Imports are read from the source (every ``import`` statement, also inside functions, except those
under ``if TYPE_CHECKING:``, which never run), so a cycle hidden behind a lazy import is found too.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import superpositional

PACKAGE = Path(superpositional.__file__).resolve().parent

# Lowest first: a module may import modules of its own layer or of layers below it, never above.
LAYERS = [
    ("_extension", "geometry"),  # no imports from the package
    ("circuit", "circuits", "testing"),  # the circuit builder
    ("backends",),  # simulation engines and the fused kernels, one registry
    ("simulate",),  # the public simulate(): checks inputs once for every backend
    ("optim",),  # the optimizer and its step strategies
    ("nn",),  # modules built on simulate()
    ("",),  # the package itself: the public API
    ("apps", "__main__"),  # applications: never imported by the library
]


def _module_name(path: Path, root: Path, package: str) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path, package: str, compiled: frozenset[str] = frozenset()) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}`` for the package whose sources are in ``root``.

    ``from X import y`` counts as importing ``X.y`` when that is a module, else ``X``; ``compiled``
    names the extension modules (no Python source: no imports of their own).
    """
    files = {_module_name(path, root, package): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                targets = [
                    f"{source}.{alias.name}"
                    if f"{source}.{alias.name}" in files.keys() | compiled
                    else source
                    for alias in node.names
                ]
            edges.update(t for t in targets if t in files and t != name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def _layer(module: str) -> int:
    relative = module.removeprefix("superpositional").removeprefix(".")
    top = relative.split(".")[0]
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


GRAPH = import_graph(PACKAGE, "superpositional", frozenset({"superpositional._C"}))


def test_the_package_has_no_import_cycle():
    assert cycles(GRAPH) == []


def test_the_cycle_check_finds_a_cycle_behind_a_lazy_import(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub import b\n")
    (package / "sub" / "b.py").write_text(
        textwrap.dedent(
            """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from .. import c  # never runs: not an edge
            def later():
                from ..a import something  # runs when called: an edge
            """
        )
    )
    (package / "c.py").write_text("from .sub.b import later\n")
    graph = import_graph(package, "pkg")
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"]]


def test_every_import_goes_down_the_layers():
    upward = [
        f"{module} imports {other}"
        for module, edges in GRAPH.items()
        for other in edges
        if _layer(other) > _layer(module)
    ]
    assert upward == []


def test_the_library_never_imports_its_applications():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            # Every public name, since the package binds them on first use.
            "import sys, superpositional as sp; [getattr(sp, name) for name in sp.__all__]; "
            "print(sorted(m for m in sys.modules if 'apps' in m))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"


# -- the base dependencies alone -----------------------------------------------------------------------


def _base_distributions() -> list[importlib.metadata.Distribution]:
    """superpositional's base dependencies (no extras) and theirs, transitively."""
    from packaging.requirements import Requirement

    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(importlib.metadata.requires("superpositional") or [])
    while todo:
        requirement = Requirement(todo.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        key = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if key in seen:
            continue
        seen[key] = importlib.metadata.distribution(requirement.name)
        todo += seen[key].requires or []
    return list(seen.values())


def _top_level_entries(dist: importlib.metadata.Distribution) -> set[Path]:
    """The files and folders a distribution put directly in its site-packages (its dist-info too)."""
    site = Path(dist.locate_file(""))
    entries = set()
    for file in dist.files or []:
        first = Path(file).parts[0]
        if first != ".." and not first.endswith(".pth"):
            entries.add(site / first)
    return entries


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory) -> Path:
    """A venv holding only the base dependencies (linked from this environment) and superpositional."""
    venv = tmp_path_factory.mktemp("base-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    for dist in _base_distributions():
        for entry in _top_level_entries(dist):
            if entry.exists() and not (site / entry.name).exists():
                (site / entry.name).symlink_to(entry)
    # superpositional as it is installed here (an editable install keeps _C in its build folder).
    ours = site / "superpositional"
    ours.mkdir()
    for entry in PACKAGE.iterdir():
        if entry.name != "__pycache__":
            (ours / entry.name).symlink_to(entry)
    compiled = importlib.util.find_spec("superpositional._C")
    if compiled is not None and compiled.origin and not (ours / Path(compiled.origin).name).exists():
        (ours / Path(compiled.origin).name).symlink_to(compiled.origin)
    return venv


def _run_in(venv: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SUPERPOSITIONAL_QISKIT"))}
    return subprocess.run(
        [str(venv / "bin" / "python"), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )


def test_import_and_info_need_only_the_base_dependencies(base_venv, tmp_path):
    check = _run_in(
        base_venv,
        tmp_path,
        "-c",
        textwrap.dedent(
            """
            import importlib.util, sys
            extras = ("qiskit", "qiskit_aer", "qiskit_ibm_runtime", "matplotlib", "transformers", "pytest")
            for name in extras:
                assert importlib.util.find_spec(name) is None, f"{name} is visible: not a base-only venv"
            import superpositional as sp
            assert sp.__file__.startswith(sys.prefix), sp.__file__
            print(sp.available_backends())
            """
        ),
    )
    assert check.returncode == 0, check.stderr[-3000:]
    assert "'torch'" in check.stdout and "'aer'" not in check.stdout
    info = _run_in(base_venv, tmp_path, "-m", "superpositional", "info")
    assert info.returncode == 0, info.stderr[-3000:]
    assert "superpositional: " in info.stdout and "qiskit: not installed" in info.stdout
