#!/usr/bin/env bash
# The README's test command. Sets up .venv if needed, then runs the test suite.
#   scripts/test.sh            fast tests (a few minutes on 2 cores)
#   scripts/test.sh --slow     fast + slow end-to-end tests (real models, real audio)
# Under CI (CI=true) the slow tests always run too. Extra arguments go to pytest.
# The docstring examples in asrtune/ run as doctests (pyproject.toml: testpaths, --doctest-modules).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
marker=(-m "not slow")
if [ "${1:-}" = "--slow" ]; then shift; marker=(-m "slow or not slow"); fi
if [ "${CI:-}" = "true" ]; then marker=(-m "slow or not slow"); fi
exec python -m pytest -q "${marker[@]}" "$@"
