#!/usr/bin/env bash
# Install what ocrpipe needs on Debian/Ubuntu, then make .venv with ocrpipe and its test tools.
#
# Safe to run again and again: it installs system packages only when a tool or a Tesseract language
# is missing, creates .venv only when there is none, and reinstalls into it only when pyproject.toml
# changed since the last install.
#
# Environment:
#   PYTHON=/path/to/python3.x   interpreter for .venv (default: the first python3.11+ found on PATH)
#   OCR_LANG=fra+eng            Tesseract languages to make sure of (eng and fra always are); with
#                               OCR_LANG=auto, OCR_LANG_DEFAULT and OCR_LANG_CANDIDATES (deu+eng+fra) too
#   OCRPIPE_SKIP_APT=1          never touch system packages (only report what is missing)
#   OFFICE_INPUT=auto|on|off    Office documents through LibreOffice: unless off, LibreOffice (its -nogui
#                               Writer, Calc and Impress) and the metric-compatible fonts (Carlito, Caladea,
#                               Liberation) are installed; scripts/test.sh asks for them always
#   OCRPIPE_TEST_BROWSER=1      also a headless browser for the status page test (Debian's chromium);
#                               scripts/test.sh sets it, `ocrpipe run` itself never needs one
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$PWD
VENV=$REPO_ROOT/.venv
STAMP=$VENV/.ocrpipe-install-stamp
MIN_PY_MAJOR=3
MIN_PY_MINOR=11

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# ----- system packages -----------------------------------------------------------------------------

APT_UPDATED=0

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi  # no terminal (CI): never wait for a password
    else
        die "need root to run: $* (run this script as root, or install sudo)"
    fi
}

apt_install() {
    [ "$#" -gt 0 ] || return 0
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        --no-install-recommends "$@" >/dev/null
}

# Tesseract language code -> Debian package (chi_sim -> tesseract-ocr-chi-sim), as `ocrpipe doctor` says.
lang_package() { local l=${1//_/-}; printf 'tesseract-ocr-%s' "${l,,}"; }

wanted_languages() {  # OCR_LANG=auto names none itself: its default and candidates count
    local langs="eng+fra+${OCR_LANG:-}+${OCR_LANG_DEFAULT:-}+${OCR_LANG_CANDIDATES:-}"
    tr '+,' '\n\n' <<<"$langs" | sed 's/[[:space:]]//g' | grep -v -e '^$' -e '^osd$' -e '^auto$' | sort -u
}

missing_system_packages() {
    local -a need=()
    command -v tesseract >/dev/null 2>&1 || need+=(tesseract-ocr)
    command -v gs >/dev/null 2>&1 || need+=(ghostscript)
    command -v 7z >/dev/null 2>&1 || need+=(p7zip-full)
    local installed="" lang
    if command -v tesseract >/dev/null 2>&1; then
        installed=$(tesseract --list-langs 2>&1 || true)
    fi
    while read -r lang; do
        grep -qx -- "$lang" <<<"$installed" || need+=("$(lang_package "$lang")")
    done < <(wanted_languages)
    # Orientation data: ROTATE_PAGES (auto by default) turns sideways and upside-down pages with it.
    grep -qx -- osd <<<"$installed" || need+=(tesseract-ocr-osd)
    mapfile -t -O "${#need[@]}" need < <(missing_convert_packages)
    printf '%s\n' "${need[@]}"
}

deb_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

office_wanted() { [ "$(tr '[:upper:]' '[:lower:]' <<<"${OFFICE_INPUT:-auto}")" != off ]; }

# The CONVERT stage: Pango for WeasyPrint (e-mail), always; LibreOffice without its GUI and the fonts
# that keep Word and PowerPoint layouts (Calibri -> Carlito, Cambria -> Caladea, Arial/Times -> Liberation),
# unless OFFICE_INPUT=off.
missing_convert_packages() {
    local pkg
    if command -v dpkg-query >/dev/null 2>&1; then
        for pkg in libpango-1.0-0 libpangoft2-1.0-0; do deb_installed "$pkg" || echo "$pkg"; done
    fi
    office_wanted || return 0
    if ! command -v soffice >/dev/null 2>&1; then
        printf '%s\n' libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui
    fi
    if command -v dpkg-query >/dev/null 2>&1; then
        for pkg in fonts-crosextra-carlito fonts-crosextra-caladea fonts-liberation; do
            deb_installed "$pkg" || echo "$pkg"
        done
    fi
}

ensure_system_packages() {
    local -a need=() extras=()
    mapfile -t need < <(missing_system_packages | sed '/^$/d')
    # python3 -m venv needs ensurepip, which Debian ships apart (python3.X-venv).
    if [ -n "${PY_FOR_VENV:-}" ] && [ ! -x "$VENV/bin/python" ] \
        && ! "$PY_FOR_VENV" -c 'import ensurepip' >/dev/null 2>&1; then
        need+=("python$("$PY_FOR_VENV" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv")
    fi
    if [ "${#need[@]}" -eq 0 ]; then
        say "system tools present: tesseract ($(wanted_languages | paste -sd+), osd), gs, 7z$(office_wanted && echo ", LibreOffice")"
        return 0
    fi
    if [ "${OCRPIPE_SKIP_APT:-0}" = 1 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing system packages: ${need[*]} (install them, then run this again)"
    fi
    # Optional helpers ocrmypdf uses when asked (--optimize 2/3, --clean): cheap once apt runs anyway.
    command -v pngquant >/dev/null 2>&1 || extras+=(pngquant)
    command -v unpaper >/dev/null 2>&1 || extras+=(unpaper)
    apt_install "${need[@]}"
    if [ "${#extras[@]}" -gt 0 ]; then
        apt_install "${extras[@]}" || say "optional ${extras[*]} not installed (not needed by default)"
    fi
    local lang
    for cmd in tesseract gs 7z; do
        command -v "$cmd" >/dev/null 2>&1 || die "$cmd is still missing after apt-get install"
    done
    if office_wanted && ! command -v soffice >/dev/null 2>&1; then
        die "LibreOffice (soffice) is still missing after apt-get install (or set OFFICE_INPUT=off)"
    fi
    local installed
    installed=$(tesseract --list-langs 2>&1 || true)
    while read -r lang; do
        grep -qx -- "$lang" <<<"$installed" || die "Tesseract language '$lang' is still missing ($(lang_package "$lang"))"
    done < <(wanted_languages)
    grep -qx -- osd <<<"$installed" || die "Tesseract's orientation data 'osd' is still missing (tesseract-ocr-osd)"
}

have_browser() {
    local name
    for name in chromium chromium-browser google-chrome; do
        command -v "$name" >/dev/null 2>&1 && return 0
    done
    [ -n "${OCRPIPE_BROWSER:-}" ]
}

ensure_test_browser() {
    [ "${OCRPIPE_TEST_BROWSER:-0}" = 1 ] || return 0
    if have_browser; then
        say "headless browser present (status page test)"
        return 0
    fi
    if [ "${OCRPIPE_SKIP_APT:-0}" = 1 ] || ! command -v apt-get >/dev/null 2>&1; then
        say "no headless browser: the status page test will fail (install chromium, or set OCRPIPE_BROWSER)"
        return 0
    fi
    apt_install chromium
    have_browser || die "chromium is still missing after apt-get install"
}

# ----- Python -------------------------------------------------------------------------------------

py_ok() {  # true when "$1" runs and is Python >= 3.11
    "$1" -c "import sys; sys.exit(0 if sys.version_info >= ($MIN_PY_MAJOR, $MIN_PY_MINOR) else 1)" >/dev/null 2>&1
}

find_python() {
    if [ -n "${PYTHON:-}" ]; then
        py_ok "$PYTHON" || die "PYTHON=$PYTHON is not Python $MIN_PY_MAJOR.$MIN_PY_MINOR or newer"
        printf '%s\n' "$PYTHON"
        return 0
    fi
    local candidate
    for candidate in python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && py_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    local found
    found=$(python3 --version 2>&1 || echo "no python3")
    die "ocrpipe needs Python $MIN_PY_MAJOR.$MIN_PY_MINOR or newer; found: $found. Install python3.11+ or set PYTHON=/path/to/python3.11"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

ensure_venv() {
    if [ -e "$VENV" ] && ! py_ok "$VENV/bin/python"; then
        if [ -x "$VENV/bin/python" ]; then
            die "$VENV uses Python $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])'); ocrpipe needs $MIN_PY_MAJOR.$MIN_PY_MINOR+. Remove .venv and run this again."
        fi
        die "$VENV exists but its python does not run (moved or its interpreter removed). Remove .venv and run this again."
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating .venv with $PY_FOR_VENV ($("$PY_FOR_VENV" --version 2>&1))"
        "$PY_FOR_VENV" -m venv "$VENV" || die "python -m venv failed (on Debian: apt-get install python3-venv)"
    fi
    local want have=""
    want="$(sha256_of pyproject.toml) [test]"
    [ -f "$STAMP" ] && have=$(cat "$STAMP")
    if [ "$want" = "$have" ] && [ -x "$VENV/bin/ocrpipe" ] \
        && "$VENV/bin/python" -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ("ocrpipe", "ocrmypdf", "psutil", "filelock", "pytest", "hypothesis", "distributed", "weasyprint")))' 2>/dev/null; then
        say ".venv up to date (pyproject.toml unchanged since the last install)"
        return 0
    fi
    say "pip install -e '.[test]' into .venv"
    rm -f "$STAMP"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install --quiet -e '.[test]' </dev/null
    printf '%s\n' "$want" >"$STAMP"
}

PY_FOR_VENV=""
[ -x "$VENV/bin/python" ] || PY_FOR_VENV=$(find_python)
ensure_system_packages
ensure_test_browser
ensure_venv
say "ready: $VENV/bin/ocrpipe"
