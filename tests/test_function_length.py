"""Size limits that keep the training package readable: no function in asrtune/training/ longer
than 60 lines, and the training loop (``Trainer``, training/trainer.py) at most 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRAINING = REPO / "asrtune" / "training"
TRAINER = TRAINING / "trainer.py"
MAX_FUNCTION_LINES = 60
MAX_TRAINER_LINES = 400


def spans(tree: ast.AST, kinds: tuple[type, ...]) -> list[tuple[str, int, int]]:
    """``(name, first line, line count)`` of every node of ``kinds``, decorators included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, kinds):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            found.append((node.name, first, node.end_lineno - first + 1))
    return found


def long_functions(path: Path, limit: int, root: Path = REPO) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [f"{path.relative_to(root)}:{line} {name}() is {n} lines"
            for name, line, n in spans(tree, (ast.FunctionDef, ast.AsyncFunctionDef)) if n > limit]


def test_no_function_in_training_is_longer_than_60_lines():
    too_long = [msg for path in sorted(TRAINING.rglob("*.py")) for msg in long_functions(path, MAX_FUNCTION_LINES)]
    assert not too_long, "split these functions:\n" + "\n".join(too_long)


def test_trainer_is_at_most_400_lines():
    text = TRAINER.read_text(encoding="utf-8")
    (trainer,) = [n for n in spans(ast.parse(text), (ast.ClassDef,)) if n[0] == "Trainer"]
    assert trainer[2] <= MAX_TRAINER_LINES, f"class Trainer is {trainer[2]} lines"
    assert len(text.splitlines()) <= MAX_TRAINER_LINES, f"{TRAINER.relative_to(REPO)} is {len(text.splitlines())} lines"


def test_the_check_counts_lines_and_decorators(tmp_path):
    def body(indent: str, lines: int) -> str:
        return "\n".join(f"{indent}x{i} = {i}" for i in range(lines))

    (tmp_path / "fits.py").write_text(f"@staticmethod\ndef f():\n{body('    ', MAX_FUNCTION_LINES - 2)}\n")  # 60 lines
    (tmp_path / "over.py").write_text(f"class C:\n    @staticmethod\n    def f():\n{body('        ', MAX_FUNCTION_LINES - 1)}\n")
    assert long_functions(tmp_path / "fits.py", MAX_FUNCTION_LINES, tmp_path) == []
    assert long_functions(tmp_path / "over.py", MAX_FUNCTION_LINES, tmp_path) == ["over.py:2 f() is 61 lines"]
