#!/usr/bin/env bash
# The README's first command: set up .venv if needed, then run `asrtune demo` (real Whisper
# tiny.en, offline, fine-tuned on a synthesised domain corpus; ~15 minutes on 2 CPU cores).
# Arguments go to `asrtune demo` (see `asrtune demo --help`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec asrtune demo "$@"
