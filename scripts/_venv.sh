# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/quickstart.sh (not run on its own).
#
# Makes sure the project's virtualenv exists and has the project installed:
#   - creates $GATEWAY_VENV (default: <repo>/.venv) with Python 3.11+ if it is missing;
#   - runs `pip install -e '.[dev]'` quietly when pyproject.toml, the interpreter or the repo
#     path changed since the last install (a hash stamp kept inside the venv), or when the
#     `gateway` entry point is missing.
# Sets ROOT (repo root), VENV and VENV_PY for the caller.
#
# Environment: GATEWAY_VENV (venv path), PYTHON (interpreter to create the venv with; default:
# the first of python3.13, python3.12, python3.11, python3 that is 3.11+).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GATEWAY_VENV:-$ROOT/.venv}"
VENV_PY="$VENV/bin/python"

_gw_find_python() {
    local candidates=() c
    if [ -n "${PYTHON:-}" ]; then candidates=("$PYTHON"); else candidates=(python3.13 python3.12 python3.11 python3); fi
    for c in "${candidates[@]}"; do
        if command -v "$c" >/dev/null 2>&1 &&
            "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

if [ ! -x "$VENV_PY" ]; then
    if ! _gw_base_py="$(_gw_find_python)"; then
        echo "error: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
        exit 1
    fi
    echo "creating virtualenv $VENV with $_gw_base_py" >&2
    if ! "$_gw_base_py" -m venv "$VENV"; then
        echo "error: could not create $VENV (on Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    fi
fi

_gw_stamp="$VENV/.gateway-install-stamp"
_gw_want="$("$VENV_PY" - "$ROOT" <<'PY'
import hashlib, sys
from pathlib import Path
root = Path(sys.argv[1])
h = hashlib.sha256()
h.update((root / "pyproject.toml").read_bytes())
h.update(sys.version.encode())
h.update(str(root).encode())
print(h.hexdigest())
PY
)"
if [ ! -x "$VENV/bin/gateway" ] || [ "$(cat "$_gw_stamp" 2>/dev/null || true)" != "$_gw_want" ]; then
    echo "installing the project into $VENV (pip install -e '.[dev]') ..." >&2
    # Build warnings from setuptools are noise here: keep pip's output in a log, show it on failure.
    if ! "$VENV_PY" -m pip install --quiet --disable-pip-version-check -e "$ROOT[dev]" \
        >"$VENV/.gateway-install.log" 2>&1; then
        tail -n 40 "$VENV/.gateway-install.log" >&2
        echo "error: pip install -e '.[dev]' failed (full log: $VENV/.gateway-install.log)" >&2
        exit 1
    fi
    printf '%s\n' "$_gw_want" >"$_gw_stamp"
fi
unset _gw_stamp _gw_want _gw_base_py
