#!/usr/bin/env bash
# The README's test command. Sets up .venv if needed, then runs the test suite.
#   scripts/test.sh              fast tests (about two minutes on 2 idle cores, no test over 5 s)
#   scripts/test.sh --slow       fast + slow end-to-end tests (real models, real audio)
#   scripts/test.sh --cpu AVX2   fast tests + the slow `kernels` tests (engines, precisions and
#                                thread counts compared) on an emulated CPU: CTranslate2, torch, MKL
#                                and oneDNN limited to AVX2, or to GENERIC (no vector extensions)
# Under CI (CI=true) the slow tests always run too. Extra arguments go to pytest.
# The docstring examples in asrtune/ run as doctests (pyproject.toml: testpaths, --doctest-modules).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
marker=(-m "not slow")
if [ "${CI:-}" = "true" ]; then marker=(-m "slow or not slow"); fi
case "${1:-}" in
    --slow) shift; marker=(-m "slow or not slow") ;;
    --cpu)
        case "${2:-}" in
            # int8 and fp32 kernels give slightly different numbers on different instruction sets:
            # these runs prove that no test depends on the CPU it runs on.
            AVX2) export CT2_FORCE_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 ;;
            GENERIC) export CT2_FORCE_CPU_ISA=GENERIC ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41 ;;
            *) echo "scripts/test.sh: --cpu takes AVX2 or GENERIC, got '${2:-}'" >&2; exit 2 ;;
        esac
        echo "[test] emulating a CPU with ${2} kernels only (CTranslate2, torch, MKL, oneDNN)"
        shift 2; marker=(-m "not slow or kernels") ;;
esac
exec python -m pytest -q "${marker[@]}" "$@"
