"""Per-call host overhead of ``sp.simulate`` and its backward: small batches, where the kernel's
own work is a microsecond or less and the Python around it is the cost.

Median wall time of many calls (with a CUDA synchronisation per call on the GPU, so there it
includes the launch and the device round trip; on the GPU also the mean time per call of calls
issued back to back, the host's own cost), for ``entangled(4)``: forward alone, forward into
a preallocated ``out=``, forward with inputs that require grad (the graph recorded), the backward
alone (``backward(w, retain_graph=True)`` on one recorded graph, so that each call is one adjoint
pass), forward + backward, and for scale torch's own backward of ``x * 2`` (autograd's fixed cost
per backward call) measured the same way. Issue 17's target is 20 us per call.

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

from commit import commit  # the module beside this script

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


def back_to_back_us(call: Callable[[], object], sync: Callable[[], None], calls: int = CALLS) -> float:
    """Mean time per call of ``calls`` calls issued without waiting for the device: the host's cost
    per call wherever it exceeds the device's time per launch."""
    for _ in range(WARMUP):
        call()
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    sync()
    return (time.perf_counter() - start) / calls * 1e6


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
    columns = ("forward", "into out=", "fwd graph", "backward", "fwd+bwd", "torch x*2 bwd")
    timing = "median, synchronised each call" if device.type == "cuda" else "median"
    print(f"{'batch':>6s} " + " ".join(f"{c:>13s}" for c in columns) + f"   (us per call, {timing})")
    for batch in BATCHES:
        theta = torch.rand(batch, 4, device=device)
        grads = torch.rand(batch, 4, device=device)
        leaf = theta.clone().requires_grad_()
        out = torch.empty(batch, 4, device=device)

        weights = torch.randn(batch, 4, device=device)
        recorded = sp.simulate(circuit, leaf, grads)
        doubled = torch.rand(batch, 4, device=device).requires_grad_() * 2

        def forward_backward(leaf=leaf, grads=grads, weights=weights) -> None:
            leaf.grad = None
            sp.simulate(circuit, leaf, grads).backward(weights)

        calls = {
            "forward_us": lambda theta=theta, grads=grads: sp.simulate(circuit, theta, grads),
            "out_us": lambda theta=theta, grads=grads, out=out: sp.simulate(circuit, theta, grads, out=out),
            "forward_graph_us": lambda leaf=leaf, grads=grads: sp.simulate(circuit, leaf, grads),
            "backward_us": lambda e=recorded, w=weights: e.backward(w, retain_graph=True),
            "forward_backward_us": forward_backward,
            "torch_backward_us": lambda d=doubled, w=weights: d.backward(w, retain_graph=True),
        }
        row = {"batch": batch, **{key: median_us(call, sync) for key, call in calls.items()}}
        if device.type == "cuda":
            row["back_to_back"] = {key: back_to_back_us(call, sync) for key, call in calls.items()}
        rows.append(row)
        values = [v for k, v in row.items() if k.endswith("_us")]
        print(f"{batch:6d} " + " ".join(f"{v:13.1f}" for v in values))
    if device.type == "cuda":
        print(f"{'batch':>6s} " + " ".join(f"{c:>13s}" for c in columns) + "   (us per call, back to back)")
        for row in rows:
            print(f"{row['batch']:6d} " + " ".join(f"{v:13.1f}" for v in row["back_to_back"].values()))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"simulate-overhead-{args.device}.json"
    record = {
        "device": args.device,
        "circuit": "entangled(4)",
        "commit": commit(),
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
