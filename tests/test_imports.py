"""Every asrtune module imports without the optional extras, so doctests and the CLI run on a
base install (``pip install asrtune``)."""

from __future__ import annotations

import os
import subprocess
import sys
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

class BlockExtras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"optional extra {{name}} is not installed (blocked by the test)")
        return None

sys.meta_path.insert(0, BlockExtras())
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
