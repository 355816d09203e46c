"""Batched-simulation benchmark; writes kernels.json and kernels.png into results/.

Same as ``python -m superpositional bench --kernels``. See
``superpositional.apps.benchmarks.kernels`` for what is measured.
"""

import sys
from pathlib import Path

from superpositional.apps.benchmarks.arguments import main

from commit import export_commit

if __name__ == "__main__":
    export_commit()
    sys.exit(main("kernels", default_out=Path(__file__).resolve().parent / "results"))
