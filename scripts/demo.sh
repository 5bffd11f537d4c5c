#!/usr/bin/env bash
# Sets up what is missing, then runs `fiftyone-clipit demo` (arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fiftyone-clipit demo "$@"
