"""Batched-simulation benchmark; writes kernels.json and kernels.png into results/.

Same as ``python -m superpositional bench --kernels``. See
``superpositional.benchmarks.kernels`` for what is measured.
"""

import sys
from pathlib import Path

from superpositional.benchmarks.kernels import main

if __name__ == "__main__":
    sys.exit(main(default_out=Path(__file__).resolve().parent / "results"))
