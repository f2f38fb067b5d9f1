"""The core: pure Column/DataFrame code that turns versions into summary rows (SPEC 2-6).

Nothing here runs a Spark action, reads or writes a table, or imports anything outside ``core``, ``config``,
``definition`` (pure: what a config defines) and ``errors`` (a ruff rule enforces it: see ``core/ruff.toml``).
The runner reads, calls these functions and writes what they return.
"""
