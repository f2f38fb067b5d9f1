"""spark-submit entry file: ``spark-submit jobs/summary_pipeline.py --config summary_config.json [--mode ...]``.

It only hands over to the package's CLI. Python puts this file's folder first on ``sys.path``, where this
file's own name would shadow the ``summary_pipeline`` package, so that folder is removed before the import.
Ship the package itself with the job (``pip install`` on the cluster image, or ``--py-files`` with the wheel).
"""

from __future__ import annotations

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

from summary_pipeline.cli import main  # noqa: E402  (must follow the sys.path fix above)

if __name__ == "__main__":
    sys.exit(main())
