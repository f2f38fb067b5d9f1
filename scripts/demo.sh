#!/usr/bin/env bash
# The run command: install everything, generate synthetic source data in ./warehouse, build summary and
# latest_summary with the embedded Spark + Iceberg, and show the result.
source "$(dirname "$0")/_env.sh"
summary-pipeline demo --config examples/summary_config.json "$@"
