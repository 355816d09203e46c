"""Optimizer step benchmark; writes step.json and step.png (step-cuda.* on GPUs) into results/.

Same as ``python -m superpositional bench --step``. See
``superpositional.apps.benchmarks.step`` for what is measured.
"""

import sys
from pathlib import Path

from superpositional.apps.benchmarks.arguments import main

from commit import export_commit

if __name__ == "__main__":
    export_commit()
    sys.exit(main("step", default_out=Path(__file__).resolve().parent / "results"))
