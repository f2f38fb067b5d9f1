"""``python -m summary_pipeline``: the same CLI as ``summary-pipeline``."""

from __future__ import annotations

import sys

from summary_pipeline.cli import main

sys.exit(main())
