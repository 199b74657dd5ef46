#!/usr/bin/env bash
# Install what is missing (scripts/setup.sh), then start `ocrpipe run` on ./data (or $DATA_DIR).
# Extra arguments go to `ocrpipe run`, e.g.:  bash scripts/start.sh --once
# Relative paths (DATA_DIR, IN_DIR...) are taken from the repository root.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/ocrpipe run --data "${DATA_DIR:-./data}" "$@"
