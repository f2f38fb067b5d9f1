#!/usr/bin/env bash
# Sequenced production run, the seed's "Option 2": corrections first, then the new month, then validate.
#
# One `--mode incremental` run does all of this in one go and also moves the watermark; use this script when
# you want the two kinds of work as separate, separately logged steps. (The result is the same in either order:
# the pipeline rebuilds whatever a correction reaches. Backfill and forward do not move the watermark, so a later
# incremental run reads their versions once more and changes nothing.)
#
# Usage: deploy/run_production.sh CONFIG [MONTH]
#   MONTH          the new month to process, YYYY-MM (default: the current month, UTC)
# Environment:
#   PIPELINE       the command that runs the pipeline
#                  (default: spark-submit <repo>/jobs/summary_pipeline.py; "summary-pipeline" runs embedded Spark)
#   PIPELINE_ARGS  extra arguments for every step, e.g. "--warehouse /data/warehouse"
#   SINCE          backfill the corrections of earlier months that arrived after this time
#                  (default: 24 hours ago, UTC; format YYYY-MM-DD HH:MM:SS)
#   BACKFILL_FILTER  the backfill predicate over source columns, instead of the default
#                  "rpt_as_of_mo < '<MONTH>' AND base_ts > timestamp '<SINCE>'" (the reference config's names)
#   SAMPLE         the fraction of accounts validate checks (default 0.01)
#   LOG_DIR        where each step's log goes (default ./logs)
# Exit code: 0 when every step succeeded, else the failing step's code (validate: 1 means a check failed).
set -euo pipefail

CONFIG=${1:?usage: run_production.sh CONFIG [MONTH]}
MONTH=${2:-$(date -u +%Y-%m)}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
read -r -a PIPELINE_CMD <<< "${PIPELINE:-spark-submit $HERE/../jobs/summary_pipeline.py}"
read -r -a EXTRA <<< "${PIPELINE_ARGS:-}"
SINCE=${SINCE:-$(date -u -d '24 hours ago' '+%Y-%m-%d %H:%M:%S')}
FILTER=${BACKFILL_FILTER:-"rpt_as_of_mo < '$MONTH' AND base_ts > timestamp '$SINCE'"}
SAMPLE=${SAMPLE:-0.01}
LOG_DIR=${LOG_DIR:-./logs}
STAMP=$(date -u +%Y%m%d_%H%M%S)
mkdir -p "$LOG_DIR"

# Runs one step, logging to $LOG_DIR/<name>_<stamp>.log; stops the script with the step's exit code on failure.
step() {
  local name=$1 title=$2
  shift 2
  echo "$title"
  local status=0
  "${PIPELINE_CMD[@]}" "$@" --config "$CONFIG" "${EXTRA[@]}" 2>&1 | tee "$LOG_DIR/${name}_$STAMP.log" \
    || status=${PIPESTATUS[0]}
  if [ "$status" -ne 0 ]; then
    echo "ERROR: $name failed (exit code $status); see $LOG_DIR/${name}_$STAMP.log"
    exit "$status"
  fi
}

echo "=========================================="
echo "Summary Pipeline Production Run"
echo "Started: $(date -u)"
echo "=========================================="
step backfill "Step 1/3: corrections to months before $MONTH that arrived since $SINCE..." \
  --mode backfill --backfill-filter "$FILTER"
step forward "Step 2/3: the new month $MONTH..." --mode forward --start-month "$MONTH" --end-month "$MONTH"
step validate "Step 3/3: validating a $SAMPLE sample of accounts..." validate --sample "$SAMPLE"
echo "=========================================="
echo "Production run completed: $(date -u)"
echo "=========================================="
