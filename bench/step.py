"""Optimizer step benchmark; writes step.json and step.png (step-cuda.* on GPUs) into results/.

Same as ``python -m superpositional bench --step``. See
``superpositional.benchmarks.step`` for what is measured.
"""

import sys
from pathlib import Path

from superpositional.benchmarks.step import main

if __name__ == "__main__":
    sys.exit(main(default_out=Path(__file__).resolve().parent / "results"))
