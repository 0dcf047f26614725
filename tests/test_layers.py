"""The layer order in docs/architecture.md is the order the imports have.

The doc's ``layers`` block lists layers top first, each a name and its units (a package folder
or one module file). A module belongs to the most specific unit that holds it; it may import its
own unit and any unit of a lower layer. Every ``import`` in asrtune/ counts: module level,
inside functions, under ``if TYPE_CHECKING``, since each is a dependency a reader has to know.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "asrtune"
DOC = REPO / "docs" / "architecture.md"
BLOCK = re.compile(r"<!-- layers:start -->\s*```text\n(.*?)```\s*<!-- layers:end -->", re.S)
OUTSIDE = ("benchmarks", "scripts", "tests")  # folders beside the package that it must never import


@dataclass(frozen=True)
class Unit:
    path: str  # "asrtune/data/" (a package folder) or "asrtune/demo.py" (one module)
    layer: str
    rank: int  # 0 = the lowest layer

    def holds(self, rel_path: str) -> bool:
        return rel_path.startswith(self.path) if self.path.endswith("/") else rel_path == self.path


@dataclass(frozen=True)
class Import:
    importer: str  # module file, relative to the repo
    line: int
    target: str  # dotted module name


def read_layers(text: str) -> list[Unit]:
    """The units of the doc's block, each with its layer's rank (top line = highest)."""
    match = BLOCK.search(text)
    assert match, f"{DOC.relative_to(REPO)}: no ```text block between <!-- layers:start --> and <!-- layers:end -->"
    lines = [line.split() for line in match.group(1).splitlines() if line.strip()]
    return [Unit(path, words[0], len(lines) - 1 - i) for i, words in enumerate(lines) for path in words[1:]]


def module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: dict[str, Path], root: Path = REPO) -> list[Import]:
    """Every asrtune module ``path`` imports (and any import of :data:`OUTSIDE`), at any depth
    of its syntax tree, in line order."""
    name, is_package = module_name(path, root), path.name == "__init__.py"
    rel = str(path.relative_to(root))
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            candidates = [[alias.name] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package, up level - 1 more
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            # "from pkg import mod" imports the module pkg.mod; "from pkg import name" the package
            candidates = [[f"{base}.{alias.name}", base] for alias in node.names]
        else:
            continue
        for options in candidates:
            top = options[0].split(".")[0]
            if top in OUTSIDE:
                found.append(Import(rel, node.lineno, options[0]))
            target = next((o for o in options if o in modules), None)
            if target is not None and target != name:
                found.append(Import(rel, node.lineno, target))
    return sorted(set(found), key=lambda i: (i.line, i.target))


@pytest.fixture(scope="module")
def layout() -> tuple[list[Unit], dict[str, Path]]:
    units = read_layers(DOC.read_text(encoding="utf-8"))
    modules = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    return units, modules


def unit_of(rel_path: str, units: list[Unit]) -> Unit | None:
    holding = [u for u in units if u.holds(rel_path)]
    return max(holding, key=lambda u: len(u.path)) if holding else None


def test_every_module_sits_in_one_layer_and_every_unit_holds_a_module(layout):
    units, modules = layout
    paths = [str(p.relative_to(REPO)) for p in modules.values()]
    missing = [p for p in paths if unit_of(p, units) is None]
    empty = [u.path for u in units if not any(u.holds(p) for p in paths)]
    repeated = sorted({u.path for u in units if [v.path for v in units].count(u.path) > 1})
    assert not missing, f"modules in no layer of {DOC.relative_to(REPO)}: {missing}"
    assert not empty, f"units of {DOC.relative_to(REPO)} that hold no module (moved or deleted?): {empty}"
    assert not repeated, f"units listed twice in {DOC.relative_to(REPO)}: {repeated}"


def test_no_module_imports_a_higher_layer_or_a_sibling_unit(layout):
    units, modules = layout
    problems = []
    for path in modules.values():
        for imp in imports_of(path, modules):
            if imp.target.split(".")[0] in OUTSIDE:
                problems.append(f"{imp.importer}:{imp.line} imports {imp.target}: asrtune never imports {', '.join(OUTSIDE)}")
                continue
            mine, theirs = unit_of(imp.importer, units), unit_of(str(modules[imp.target].relative_to(REPO)), units)
            if mine is None or theirs is None or mine == theirs or theirs.rank < mine.rank:
                continue  # unplaced modules fail the test above
            where = "a higher layer" if theirs.rank > mine.rank else "another unit of its own layer"
            problems.append(f"{imp.importer}:{imp.line} ({mine.layer}: {mine.path}) imports {imp.target} "
                            f"({theirs.layer}: {theirs.path}), {where}")
    assert not problems, "imports against docs/architecture.md's layer order:\n" + "\n".join(problems)


def test_the_check_sees_function_level_relative_and_type_checking_imports(tmp_path):
    """The import walker finds what the layer test must judge (a broken walker passes anything)."""
    package = tmp_path / "asrtune" / "data"
    package.mkdir(parents=True)
    source = package / "example.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import audio\n"
        "if TYPE_CHECKING:\n"
        "    from asrtune.training.config import TrainConfig\n"
        "def late():\n"
        "    import asrtune.inference\n"
        "    from asrtune.models import resolve_model\n"
        "    from benchmarks import harness\n")
    modules = {name: Path(name) for name in ("asrtune.data.audio", "asrtune.training.config", "asrtune.inference",
                                              "asrtune.models", "asrtune.data.example")}
    found = imports_of(source, modules, root=tmp_path)
    assert [(i.line, i.target) for i in found] == [
        (2, "asrtune.data.audio"), (4, "asrtune.training.config"), (6, "asrtune.inference"), (7, "asrtune.models"),
        (8, "benchmarks.harness")]
