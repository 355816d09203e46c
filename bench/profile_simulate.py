"""Launches of the statevector kernel for Nsight Compute: ``rotated(n)`` (bench/statevector.py) on
a float32 batch, a few times, so that ``ncu --launch-skip 2 --launch-count 1`` sees a warm launch.

    ncu --kernel-name regex:statevector_kernel --launch-skip 2 --launch-count 1 \\
        python3 bench/profile_simulate.py --qubits 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import superpositional as sp

sys.path.insert(0, str(Path(__file__).parent))
from statevector import rotated  # the bench script beside this one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", type=int, default=8)
    parser.add_argument("--batch", type=int, default=10**6)
    parser.add_argument("--launches", type=int, default=4)
    args = parser.parse_args()
    circuit = rotated(args.qubits)
    theta = torch.rand(args.batch, args.qubits, device="cuda")
    grads = torch.rand(args.batch, args.qubits, device="cuda")
    for _ in range(args.launches):
        sp.simulate(circuit, theta, grads)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
