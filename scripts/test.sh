#!/usr/bin/env bash
# Sets up what is missing, then runs the whole test suite (slow tests included).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not slow"` for the fast unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
