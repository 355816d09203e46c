"""Per-call host overhead of ``sp.simulate`` and its backward: small batches, where the kernel's
own work is a microsecond or less and the Python around it is the cost.

Median wall time of many calls (with a CUDA synchronisation per call on the GPU, so there it
includes the launch and the device round trip), for ``entangled(4)``; forward alone, forward into
a preallocated ``out=``, and forward + backward through the adjoint kernels. Issue 17's target is
20 us per call.

    OMP_NUM_THREADS=1 python3 bench/simulate_overhead.py [--device cuda] [--out results/]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

import superpositional as sp

CALLS, WARMUP = 3000, 200
BATCHES = (1, 16, 256)


def median_us(call: Callable[[], object], sync: Callable[[], None]) -> float:
    for _ in range(WARMUP):
        call()
    sync()
    times = []
    for _ in range(CALLS):
        start = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--out", type=Path, default=Path("."), help="folder for simulate-overhead-<device>.json"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    circuit = sp.circuits.entangled(4)
    rows = []
    print(f"{'batch':>6s} {'forward':>10s} {'into out=':>10s} {'fwd+bwd':>10s}   (us per call, median)")
    for batch in BATCHES:
        theta = torch.rand(batch, 4, device=device)
        grads = torch.rand(batch, 4, device=device)
        leaf = theta.clone().requires_grad_()
        out = torch.empty(batch, 4, device=device)

        def backward(leaf=leaf, grads=grads) -> None:
            sp.simulate(circuit, leaf, grads).sum().backward()

        row = {
            "batch": batch,
            "forward_us": median_us(
                lambda theta=theta, grads=grads: sp.simulate(circuit, theta, grads), sync
            ),
            "out_us": median_us(
                lambda theta=theta, grads=grads, out=out: sp.simulate(circuit, theta, grads, out=out), sync
            ),
            "forward_backward_us": median_us(backward, sync),
        }
        rows.append(row)
        print(
            f"{batch:6d} {row['forward_us']:10.1f} {row['out_us']:10.1f} {row['forward_backward_us']:10.1f}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"simulate-overhead-{args.device}.json"
    record = {
        "device": args.device,
        "circuit": "entangled(4)",
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
