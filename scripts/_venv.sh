# Shared by scripts/quickstart and scripts/test: make .venv if missing and install the project.
# Usage: . scripts/_venv.sh EXTRAS   (EXTRAS like "dev" or "" for none)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv; then
        rm -rf .venv
        echo "credseal: could not create a virtual environment." >&2
        echo "credseal: hint: install it first: sudo apt-get install python3-venv" >&2
        exit 1
    fi
fi
extras="${1:-}"
target="."
[ -n "$extras" ] && target=".[$extras]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$target"
