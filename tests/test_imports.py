"""Every asrtune module imports without the optional extras, so doctests and the CLI run on a
base install (``pip install asrtune``)."""

from __future__ import annotations

import ast
import io
import json
import os
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import asrtune

# Top-level packages of the optional extras in pyproject.toml (serve, tracking, ray, lm, synth, hf,
# plots; tests/test_light_core.py checks the list of extras) and kenlm (tests only).
OPTIONAL_PACKAGES = ("fastapi", "uvicorn", "multipart", "python_multipart", "tensorboard", "mlflow", "ray",
                     "flashlight", "kenlm", "espeakng_loader", "soxr", "pyarrow", "matplotlib")
# The server's web layer is the serve extra itself, and the hotword LM is a flashlight LM class (the
# lm extra); everything that imports them lazily must not need them.
EXTRA_ONLY_MODULES = ("asrtune.serving.app", "asrtune.serving.audio", "asrtune.serving.errors", "asrtune.serving.formats",
                      "asrtune.lm.hotwords")

IMPORT_ALL = """
import importlib, importlib.abc, pkgutil, sys
import asrtune

import importlib.util

BLOCKED = {blocked!r}


class BlockExtras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"optional extra {{name}} is not installed (blocked by the test)", name=name)
        return None


real_find_spec = importlib.util.find_spec


def find_spec(name, package=None):  # a probe (transformers asks for soxr, tensorboard...) finds nothing, as when not installed
    return None if name.split(".")[0] in BLOCKED else real_find_spec(name, package)


sys.meta_path.insert(0, BlockExtras())
importlib.util.find_spec = find_spec
failed = []
for module in pkgutil.walk_packages(asrtune.__path__, "asrtune."):
    if module.name.endswith("__main__") or module.name in {extra_only!r}:  # the CLI; the serve extra's own modules
        continue
    try:
        importlib.import_module(module.name)
    except Exception as e:
        failed.append(f"{{module.name}}: {{type(e).__name__}}: {{e}}")
print("\\n".join(failed) or f"imported {{len(sys.modules)}} modules")
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_without_the_optional_extras():
    env = {**os.environ, "PYTHONPATH": str(Path(asrtune.__file__).parent.parent)}
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL.format(blocked=OPTIONAL_PACKAGES, extra_only=EXTRA_ONLY_MODULES)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0 and "imported" in result.stdout, result.stdout + result.stderr[-2000:]


#: Core packages whose import costs start-up time (torch alone ~1 s); the function-level imports
#: marked "heavy" or "start-up" keep them out of `asrtune --help` and every command's parser.
HEAVY_PACKAGES = ("torch", "torchaudio", "transformers", "ctranslate2", "faster_whisper", "peft", "huggingface_hub",
                  "safetensors", "librosa", "scipy", "soundfile", "yaml", "jiwer", "pysubs2")


def test_the_command_line_parser_loads_no_heavy_package():
    code = ("import json, sys; import asrtune.cli; asrtune.cli.build_parser(); "
            f"print(json.dumps(sorted(m for m in {list(HEAVY_PACKAGES)!r} if m in sys.modules)))")
    env = {**os.environ, "PYTHONPATH": str(Path(asrtune.__file__).parent.parent)}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout) == [], "asrtune --help imports these; import them inside the function that needs them"

# --- function-level imports say why they are not at the top -------------------------------------
#
# An import inside a function is a dependency a reader cannot see at the top of the module, so it
# is only for an optional extra, start-up time (torch, transformers, soundfile... stay out of
# `import asrtune` and `asrtune --help`) or a layer/cycle constraint, and it says which: a comment
# on its own line(s), or a comment line directly above it or above the run of imports it belongs
# to (`# heavy: torch`, `# optional extra [lm]`, `# cycle: X imports this module`). An import in a
# ``with needs_extra(...)`` block needs none: the block names the extra.

PACKAGE = Path(asrtune.__file__).parent
#: files not (yet) under the rule
#: comments that are tool directives, not reasons
DIRECTIVE = re.compile(r"^#\s*(noqa|type:|pragma|pylint|fmt:)", re.I)


def reason_comments(source: str) -> dict[int, bool]:
    """Line number -> whether the line is only a comment (True) or code followed by one (False), for
    every line holding a comment that is more than a tool directive."""
    comments = {}
    code_lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            if not DIRECTIVE.match(tok.string) and re.search(r"[A-Za-z]", tok.string):
                comments[tok.start[0]] = True
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    return {line: line not in code_lines for line in comments}


def _is_needs_extra(node: ast.AST) -> bool:
    return isinstance(node, (ast.With, ast.AsyncWith)) and any(
        isinstance(item.context_expr, ast.Call) and getattr(item.context_expr.func, "id",
                                                            getattr(item.context_expr.func, "attr", None)) == "needs_extra"
        for item in node.items)


def unexplained_imports(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """``(line, statement)`` of every import inside a function that gives no reason."""
    comments = reason_comments(source)
    lines = source.splitlines()
    found = []

    def visit_body(body: list[ast.stmt], in_function: bool, in_extra: bool) -> None:
        run_explained = False  # a comment line above a run of consecutive imports explains the run
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                run_explained = run_explained or comments.get(node.lineno - 1, False)
                own = any(line in comments for line in range(node.lineno, node.end_lineno + 1))
                if in_function and not (in_extra or run_explained or own):
                    found.append((node.lineno, lines[node.lineno - 1].strip()))
                continue
            run_explained = False
            visit(node, in_function, in_extra)

    def visit(node: ast.AST, in_function: bool, in_extra: bool) -> None:
        in_function = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        in_extra = in_extra or _is_needs_extra(node)
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            value = getattr(node, field, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                visit_body(value, in_function, in_extra)
            elif isinstance(value, list):
                for child in value:
                    visit(child, in_function, in_extra)

    visit(ast.parse(source, filename), False, False)
    return sorted(found)


def test_every_function_level_import_says_why():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        problems += [f"asrtune/{rel}:{line}: {text}" for line, text in unexplained_imports(path.read_text(encoding="utf-8"))]
    assert not problems, ("imports inside functions without a reason (move them to the top of the module, or say "
                          "why on the line or the line above: '# heavy: torch', '# optional extra [lm]', "
                          "'# cycle: ...'):\n" + "\n".join(problems))


def test_the_reason_check_judges_comments_runs_and_extras():
    """The checker finds what it must (a broken checker passes anything)."""
    source = (
        "import os  # module level: never judged\n"
        "def f():\n"
        "    import json\n"                                  # 3: no reason
        "    import torch  # heavy: torch\n"
        "    # heavy: transformers, only for training\n"
        "    import transformers\n"
        "    from transformers import AutoModel\n"           # 7: same run as line 6
        "    x = 1\n"
        "    import re\n"                                    # 9: the run ended at x = 1
        "    import yaml  # noqa: F401\n"                    # 10: a directive is no reason
        "    with needs_extra('lm', 'beam search', 'flashlight-text'):\n"
        "        import flashlight\n"
        "    if x:\n"
        "        from asrtune import (\n"
        "            errors,  # cycle: errors imports this module\n"
        "        )\n"
        "        import csv\n"                               # 17: a comment inside the statement above
        "class C:\n"
        "    def m(self):\n"
        "        import soundfile as sf\n"                   # 20: in a method
        "        return lambda: 0\n")
    assert [line for line, _ in unexplained_imports(source)] == [3, 9, 10, 17, 20]
