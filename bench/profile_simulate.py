"""Launches of a simulation kernel for Nsight Compute, a few times on one float32 batch, so that
``ncu --launch-skip 2 --launch-count 1`` sees a warm launch: the statevector kernel on ``rotated(n)``
(bench/statevector.py), or with ``--backward`` the product adjoint on ``attention(n)``.

    ncu --kernel-name regex:statevector_kernel --launch-skip 2 --launch-count 1 \\
        python3 bench/profile_simulate.py --qubits 8
    ncu --kernel-name regex:backward_kernel --launch-skip 2 --launch-count 1 \\
        python3 bench/profile_simulate.py --qubits 4 --backward
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import superpositional as sp
from superpositional.backends import Batch, kernel

sys.path.insert(0, str(Path(__file__).parent))
from statevector import rotated  # the bench script beside this one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", type=int, default=8)
    parser.add_argument("--batch", type=int, default=10**6)
    parser.add_argument("--launches", type=int, default=4)
    parser.add_argument("--backward", action="store_true", help="the adjoint of attention(n)")
    args = parser.parse_args()
    theta = torch.rand(args.batch, args.qubits, device="cuda")
    grads = torch.rand(args.batch, args.qubits, device="cuda")
    if args.backward:
        circuit = sp.circuits.attention(args.qubits)
        rows = Batch(theta, grads, args.batch, theta.dtype, theta.device)
        weights = torch.randn_like(theta)
        for _ in range(args.launches):
            kernel.simulate_backward(circuit, rows, weights, want_params=True, want_grads=True)
    else:
        circuit = rotated(args.qubits)
        for _ in range(args.launches):
            sp.simulate(circuit, theta, grads)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
