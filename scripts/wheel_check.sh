#!/usr/bin/env bash
# The package as a user gets it: build the wheel, install it (not -e) into a fresh venv outside the
# checkout, and run `ocrpipe doctor` and one real `ocrpipe run --once` on a generated page. A module or
# plugin file missing from the wheel fails here, not on a user's machine.
# Usage: bash scripts/wheel_check.sh [WORK_DIR]   (needs scripts/setup.sh's system tools and .venv)
set -euo pipefail
exec </dev/null

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
work=${1:-$(mktemp -d "${TMPDIR:-/tmp}/ocrpipe-wheel.XXXXXX")}
mkdir -p "$work"
say() { printf 'wheel-check: %s\n' "$*"; }

say "building the wheel"
PIP_DISABLE_PIP_VERSION_CHECK=1 .venv/bin/python -m pip wheel --quiet --no-deps -w "$work/dist" "$repo"
wheel=$(ls "$work"/dist/ocrpipe-*.whl)
say "installing $(basename "$wheel") into a fresh venv"
python=$(.venv/bin/python -c 'import sys; print(sys.executable)')
"$python" -m venv "$work/venv"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$work/venv/bin/python" -m pip install --quiet "$wheel"

cd "$work"  # away from the checkout, so nothing imports the source tree
installed=$("$work/venv/bin/python" -c 'import ocrpipe, pathlib; print(pathlib.Path(ocrpipe.__file__).parent)')
case "$installed" in
    "$repo"*) echo "wheel-check: ocrpipe was imported from the checkout ($installed), not the wheel" >&2; exit 1 ;;
esac
say "doctor"
"$work/venv/bin/ocrpipe" doctor --data "$work/data"
say "one real run --once"
mkdir -p "$work/data/in"
"$work/venv/bin/python" - "$work/data/in/wheel check.png" <<'PY'
import sys
from PIL import Image, ImageDraw, ImageFont
page = Image.new("L", (1700, 600), 255)
ImageDraw.Draw(page).text((100, 200), "Installed from the wheel", fill=0, font=ImageFont.load_default(size=96))
page.save(sys.argv[1], dpi=(300, 300))
PY
ORCHESTRATOR_PORT=0 "$work/venv/bin/ocrpipe" run --once --data "$work/data"  # no port that another program may hold
test -s "$work/data/out/wheel check.pdf" || { echo "wheel-check: no output in $work/data/out" >&2; ls -R "$work/data" >&2; exit 1; }
say "ok: $(basename "$wheel") runs from a fresh venv"
