#!/usr/bin/env bash
# Install what is missing (scripts/setup.sh, with a headless browser), then run the whole test suite, integration tests included.
# Extra arguments go to pytest, e.g.:  bash scripts/test.sh -m "not integration" -x
# The exit code is pytest's (5 means no test was collected).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# also Chromium, for the status page test, German for OCR_LANG=auto's tests (eng+fra+deu), and
# LibreOffice, for the Office tests (whatever OFFICE_INPUT says)
OFFICE_INPUT=on OCR_LANG="${OCR_LANG:+$OCR_LANG+}deu" OCRPIPE_TEST_BROWSER=1 bash scripts/setup.sh
shown=""
[ "$#" -eq 0 ] || shown=$(printf ' %q' "$@")
echo "test: .venv/bin/python -m pytest -q$shown   (in $PWD)"
exec .venv/bin/python -m pytest -q "$@"
