"""A quick look at the fused step on one large tensor per dtype, for kernel A/B work on the GPU.

One [2^k/1024, 1024] parameter (default k = 28) in float32, bfloat16 (float32 and bfloat16 states)
and float64; ours with coverage "paper" and coverage "all" (entangled(4); also with
``perturbation="preconditioned"``) against
``torch.optim.AdamW(fused=True)`` built in the same process. Each row is the median of 15 steps
timed by CUDA events after 3 warm-up steps; the effective bandwidth counts the bytes the step must
move at their storage dtypes and is shown as a percentage of a same-dtype ``copy_`` of the
parameter timed the same way. ``bench/step.py`` is the full benchmark (interleaved rounds, every
workload); this one takes seconds, which is what an A/B of two kernel builds needs.

    python3 bench/step_single.py --label after --out results/
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path

import torch

import superpositional as sp

STEPS, WARMUP = 15, 3
DTYPES = (torch.float32, torch.bfloat16, torch.float64)


def median_ms(run: Callable[[], object]) -> float:
    for _ in range(WARMUP):
        run()
    torch.cuda.synchronize()
    times = []
    for _ in range(STEPS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def copy_ms(shape: tuple[int, int], dtype: torch.dtype) -> float:
    """A same-dtype copy of the parameter: the bandwidth the step is measured against."""
    source = torch.empty(shape, device="cuda", dtype=dtype)
    target = torch.empty_like(source)
    return median_ms(lambda: target.copy_(source))


def configs(dtype: torch.dtype) -> dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]]:
    made: dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]] = {
        "adamw fused": lambda ps: torch.optim.AdamW(ps, fused=True)
    }
    for states in ["float32"] + (["param"] if dtype.itemsize == 2 else []):
        state_dtype = torch.float32 if states == "float32" else "param"
        made[f"paper, {states} states"] = lambda ps, s=state_dtype: sp.SuperpositionalAdamW(ps, state_dtype=s)
        made[f"all, {states} states"] = lambda ps, s=state_dtype: sp.SuperpositionalAdamW(
            ps, state_dtype=s, coverage="all", circuit=sp.circuits.entangled(4)
        )
    made["all, preconditioned"] = lambda ps: sp.SuperpositionalAdamW(
        ps, coverage="all", circuit=sp.circuits.entangled(4), perturbation="preconditioned"
    )
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2", type=int, default=28, help="parameter count, as log2 (default 28)")
    parser.add_argument("--label", default="run", help="names the JSON file and the rows")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for step-single-<label>.json")
    args = parser.parse_args()
    numel = 2**args.log2
    shape = (numel // 1024, 1024)
    rows = []
    print(f"{'dtype':9s} {'config':22s} {'ms':>8s} {'vs AdamW':>9s} {'% copy':>7s}")
    for dtype in DTYPES:
        copy_bandwidth = 2 * numel * dtype.itemsize / copy_ms(shape, dtype)
        baseline = None
        for name, make in configs(dtype).items():
            p = torch.nn.Parameter(torch.randn(shape, device="cuda", dtype=dtype))
            p.grad = torch.randn_like(p)
            optimizer = make([p])
            ms = median_ms(optimizer.step)
            baseline = baseline or ms
            state_bytes = optimizer.state[p]["exp_avg"].element_size()
            moved = numel * (3 * dtype.itemsize + 4 * state_bytes)  # p read and written, g read; m, v both
            row = {
                "label": args.label,
                "dtype": str(dtype).removeprefix("torch."),
                "config": name,
                "ms": ms,
                "vs_adamw": ms / baseline,
                "percent_of_copy": 100 * moved / ms / copy_bandwidth,
            }
            rows.append(row)
            ratio, percent = ms / baseline, row["percent_of_copy"]
            print(f"{row['dtype']:9s} {name:22s} {ms:8.3f} {ratio:8.3f}x {percent:6.1f}%", flush=True)
            del optimizer, p
            torch.cuda.empty_cache()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"step-single-{args.label}.json"
    path.write_text(json.dumps({"log2": args.log2, "steps": STEPS, "rows": rows}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
