"""spark-submit entry file: ``spark-submit jobs/summary_pipeline.py --config summary_config.json [--mode ...]``.

It only hands over to the package's CLI. Python puts this file's folder first on ``sys.path``, where this
file's own name would shadow the ``summary_pipeline`` package, so that folder is removed before the import.
The package itself must be pip-installed where the driver runs (a bootstrap action or the cluster image), not
shipped with ``--py-files``: its pydantic dependency is a compiled extension, which Python cannot import from a
zip (docs/operations.md, "Running on a cluster").
"""

from __future__ import annotations

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

from summary_pipeline.cli import main  # noqa: E402  (must follow the sys.path fix above)

if __name__ == "__main__":
    sys.exit(main())
