#!/usr/bin/env bash
# Build the wheel a cluster installs (dist/summary_pipeline-<version>-py3-none-any.whl).
# Usage: bash scripts/package.sh      (see docs/operations.md, "Running on a cluster")
source "$(dirname "$0")/_env.sh"
rm -rf dist build
python -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir dist .
ls dist/*.whl
