"""benchmarks/: the generated tables match the results JSON, and every benchmark uses the harness."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import harness, tables

REPO = Path(__file__).resolve().parent.parent
SHARED_MODULES = {"__init__", "harness", "tables", "recipes"}  # what benchmarks share; every other module is a benchmark
BENCHMARKS = sorted(p for p in (REPO / "benchmarks").glob("*.py") if p.stem not in SHARED_MODULES)


def test_generated_tables_are_current():
    """README.md's and docs/'s tables are what ``python -m benchmarks.tables`` makes of the JSON now."""
    stale = [str(p.relative_to(REPO)) for p in tables.stale()]
    assert not stale, f"out of date: {stale}; run python -m benchmarks.tables"


def test_the_docs_hold_the_summary_and_every_table_is_placed():
    text = "".join(p.read_text(encoding="utf-8") for p in tables.documents() if p.is_file())
    names = {m.group("name") or "summary" for m in tables.MARKER.finditer(text)}
    assert names == set(tables.TABLES), f"tables without a place in README.md or docs/: {set(tables.TABLES) - names}"


def test_a_block_is_rendered_from_the_json_and_regenerating_changes_nothing():
    doc = REPO / "docs" / "example.md"
    text = "before\n<!-- results:eval:start -->\nhand-edited numbers\n<!-- results:eval:end -->\nafter\n"
    once = tables.fill(text, doc)
    assert "hand-edited" not in once and once.startswith("before\n") and once.endswith("after\n")
    engines = [r["engine"] for r in tables.load("eval.json")["rows"]]
    assert all(f"| {e} |" in once for e in engines)
    assert tables.fill(once, doc) == once


def test_links_are_relative_to_the_file_holding_the_table():
    block = "<!-- results:start -->\n<!-- results:end -->\n"
    assert "](benchmarks/bench_finetune.py)" in tables.fill(block, REPO / "README.md")
    assert "](../benchmarks/bench_finetune.py)" in tables.fill(block, REPO / "docs" / "x.md")


@pytest.mark.parametrize("text, message", [
    ("<!-- results:nonesuch:start -->\n<!-- results:nonesuch:end -->", "no table named 'nonesuch'"),
    ("<!-- results:eval:start -->\n<!-- results:serve:end -->", "closed by the end marker of serve"),
])
def test_a_wrong_marker_is_one_error_naming_the_file(text, message):
    with pytest.raises(tables.TableError, match=message) as e:
        tables.fill(text, REPO / "docs" / "bad.md")
    assert "bad.md" in str(e.value)


def test_results_are_kept_row_by_row(tmp_path):
    """A benchmark saving as it goes: a named row replaces only itself; a re-saved record replaces its copy."""
    rows = tmp_path / "results" / "rows.json"
    harness.save_row(rows, "a", {"wer": 1})
    harness.save_row(rows, "b", {"wer": 2})
    harness.save_row(rows, "a", {"wer": 3})
    saved = harness.load_result(rows)
    assert {k: v["wer"] for k, v in saved.items()} == {"a": 3, "b": 2} and all("finished" in v for v in saved.values())
    records = tmp_path / "records.json"
    for record in ({"row": "x", "when": "t1", "n": 1}, {"row": "x", "when": "t2", "n": 2}, {"row": "x", "when": "t1", "n": 3}):
        harness.append_record(records, record, key=("row", "when"))
    assert [(r["when"], r["n"]) for r in harness.load_result(records)["rows"]] == [("t2", 2), ("t1", 3)]


def test_a_missing_data_root_is_one_line_naming_the_flag(tmp_path):
    args = harness.parser("doc", out="x.json").parse_args(["--data", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit, match="--data .*nowhere: not found"):
        harness.data_root(args)
    assert args.out == harness.RESULTS / "x.json"


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_every_benchmark_uses_the_harness_and_no_other_benchmark(path):
    source, imports = path.read_text(encoding="utf-8"), _imports(path)
    assert "benchmarks.harness" in imports, f"{path.name} does not use benchmarks.harness"
    assert "sys.path" not in source, f"{path.name} edits sys.path: run it as python -m benchmarks.{path.stem}"
    assert "ASRTUNE_SHARED_DATA" not in source and "os.environ.get" not in source, \
        f"{path.name} reads the environment: the data root is the harness's --data"
    benchmarks = {p.stem for p in BENCHMARKS}
    others = [i for i in imports if i.split(".")[0] in benchmarks or (i.startswith("benchmarks.") and i.split(".")[1] in benchmarks)]
    assert not others, f"{path.name} imports another benchmark ({others}): shared code goes into the harness or asrtune"


@pytest.mark.slow
@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_every_benchmark_parses_its_arguments(path):
    """``--help`` of each benchmark, as a user runs it (imports torch: slow)."""
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{path.stem}", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]
