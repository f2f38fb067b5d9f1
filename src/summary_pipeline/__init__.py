"""summary-pipeline: monthly credit summaries with rolling history arrays on Spark + Iceberg."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
