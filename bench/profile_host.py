"""Where the host time of one small ``sp.simulate`` call goes: the mean time per call of calls issued
back to back on each device, then Python's profiler over the calls on the last one.

    python3 bench/profile_host.py [--device cuda] [--calls 3000]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import torch

import superpositional as sp


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
        for _ in range(200):
            sp.simulate(circuit, theta, grads)
        sync()
        start = time.perf_counter()
        for _ in range(args.calls):
            sp.simulate(circuit, theta, grads)
        sync()
        print(f"{device}: {(time.perf_counter() - start) / args.calls * 1e6:.1f} us per call, back to back")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.calls):
        sp.simulate(circuit, theta, grads)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
