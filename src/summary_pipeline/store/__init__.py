"""Storage and crash safety: Iceberg tables and the MERGE, snapshots and undo, the lock, the run ledger and the
guard that wraps every run that writes (SPEC 8)."""
