"""Where the host time of one small ``sp.simulate`` call goes: the mean time per call of calls issued
back to back on each device, then Python's profiler over the calls on the last one.

    python3 bench/profile_host.py [--device cuda] [--calls 3000]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

import torch

import superpositional as sp

sys.path.insert(0, str(Path(__file__).parent))
from simulate_overhead import back_to_back_us  # the bench script beside this one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    circuit = sp.circuits.entangled(4)
    devices = ["cpu", "cuda"] if args.device == "cuda" else ["cpu"]
    for device in devices:
        theta, grads = torch.rand(1, 4, device=device), torch.rand(1, 4, device=device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        per_call = back_to_back_us(lambda t=theta, g=grads: sp.simulate(circuit, t, g), sync, args.calls)
        print(f"{device}: {per_call:.1f} us per call, back to back")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.calls):
        sp.simulate(circuit, theta, grads)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
