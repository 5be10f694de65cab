#!/usr/bin/env bash
# The test command: scripts/test.sh [pytest args...]
#
# Works on a fresh machine with only Python 3.11+: creates .venv and installs the project
# (pip install -e '.[dev]') when needed, then runs pytest with the arguments given.
#
# Databases: set GATEWAY_TEST_DATABASE_URL (an admin URL of a PostgreSQL server, e.g.
# postgresql://postgres@127.0.0.1:5432/test) and GATEWAY_TEST_REDIS_URL (e.g.
# redis://127.0.0.1:6379/15) to use running servers; unset, the suite starts an embedded
# PostgreSQL and Redis by itself. Both are passed through the environment as they are.
#
# Exit code: pytest's. "No tests collected" (5) is a failure too.
set -euo pipefail

# shellcheck source=scripts/_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"

rc=0
"$VENV_PY" -m pytest "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "scripts/test.sh: pytest collected no tests (exit 5): failing" >&2
fi
exit "$rc"
