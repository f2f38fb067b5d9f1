#!/usr/bin/env bash
# The test command: install everything (dev extras), then lint, type-check and run the whole test suite.
# Extra arguments go to pytest (e.g. -m "not slow" for the fast part).
source "$(dirname "$0")/_env.sh" dev
ruff check .
mypy
python -m pytest "$@"
