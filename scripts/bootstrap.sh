#!/usr/bin/env bash
# Creates .venv and installs the project into it, once per change of pyproject.toml (the
# project's or the fake Discord's).
# Sourced by scripts/run and scripts/test; sets VENV and PY for them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SENTIMENT_VENV:-$ROOT/.venv}"
BASE_PYTHON="${PYTHON:-python3}"
# The CPU build of torch; an unpinned torch would pull several GB of CUDA packages.
TORCH_SPEC="${SENTIMENT_TORCH_SPEC:-torch==2.13.0}"

if ! "$BASE_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: Sentiment Bot needs Python 3.11 or newer; '$BASE_PYTHON' is $("$BASE_PYTHON" -V 2>&1)." >&2
    echo "       Set PYTHON=/path/to/python3.11 and run again." >&2
    exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtual environment $VENV" >&2
    "$BASE_PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.sentiment-bot-installed"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/fakediscord/pyproject.toml" <(echo "$TORCH_SPEC") \
    | sha256sum | cut -c1-64)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing $TORCH_SPEC (CPU build) first, then the project" >&2
    "$PY" -m pip install --quiet --disable-pip-version-check "$TORCH_SPEC"
    # The dev extra, and the fake Discord the tests and sentiment-sandbox run the bot against
    # (its own distribution, fake-discord, so that an install of the bot does not carry it).
    "$PY" -m pip install --quiet --disable-pip-version-check -e "$ROOT[dev]" -e "$ROOT/fakediscord"
    echo "$want" >"$stamp"
fi
# SST-2 sits beside the repo in this workplace's CI (../shared/data/sst2); elsewhere set
# SENTIMENT_DATA_DIR, or let the training command download the files into data/sst2.
if [ -z "${SENTIMENT_DATA_DIR:-}" ] && [ -d "$ROOT/../shared/data/sst2" ]; then
    export SENTIMENT_DATA_DIR="$ROOT/../shared/data/sst2"
fi
if [ -z "${SENTIMENT_CHAT_DATA_DIR:-}" ] && [ -d "$ROOT/../shared/data/goemotions" ]; then
    export SENTIMENT_CHAT_DATA_DIR="$ROOT/../shared/data/goemotions"
fi
export VENV PY
