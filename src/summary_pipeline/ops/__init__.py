"""The operator's commands beside a run: ``maintain`` (compaction, snapshot expiry), ``validate`` (the
checklist and the invariant) and ``inspect`` (one account across both tables)."""
