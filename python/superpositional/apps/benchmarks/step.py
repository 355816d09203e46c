"""Optimizer step time: SuperpositionalAdamW (fused kernel) against torch.optim.AdamW and our torch backend.

One float32 parameter of ``2^k`` elements (shaped ``[2^k / 1024, 1024]``, so coverage
"all" groups rows of 1024) with a fixed random gradient. Runs are interleaved (every
configuration steps once per round, rounds repeated) and the median is reported, so
that every ratio compares runs made side by side. Achieved bandwidth counts the floor
of 28 bytes per float32 parameter (read p, g, m, v; write p, m, v); a plain copy of
the parameter (8 bytes per element) is measured in the same run as the machine's
attainable bandwidth.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from superpositional import circuits
from superpositional.backends import available_backends
from superpositional.optim import SuperpositionalAdamW

from .common import format_table, provenance, write_results

BYTES_PER_PARAM = 28
SIZES = {"cpu": [16, 18, 20, 22, 23, 24], "cuda": [20, 22, 24, 26, 28]}
QUICK_SIZES = [14, 16]
# Our torch backend simulates a [groups, 2^n] complex state per tensor: keep it to sizes that finish.
TORCH_BACKEND_MAX = {"cpu": 22, "cuda": 26}
PEER = "adamw fused"
# docs/design.md, *Performance*: the fused step with coverage "all", entangled(4), against AdamW(fused=True).
TARGET_ALL = {"cpu": 2.0, "cuda": 1.15}


def configurations(device: str, torch_backend_max: int) -> dict[str, tuple[Callable, int]]:
    """name -> (optimizer factory, largest log2 size it runs at)."""
    kernel = "cpu" if device == "cpu" else device
    entangled = circuits.entangled(4)
    paper = circuits.paper(4)
    configs: dict[str, tuple[Callable, int]] = {
        PEER: (lambda p: torch.optim.AdamW([p], fused=True), 99),
        "adamw foreach": (lambda p: torch.optim.AdamW([p], foreach=True), 99),
        "ours paper paper(4)": (lambda p: SuperpositionalAdamW([p], backend=kernel), 99),
        "ours all paper(4)": (
            lambda p: SuperpositionalAdamW([p], coverage="all", circuit=paper, backend=kernel),
            99,
        ),
        "ours all entangled(4)": (
            lambda p: SuperpositionalAdamW([p], coverage="all", circuit=entangled, backend=kernel),
            99,
        ),
        # AMSGrad reads and writes one more state tensor: its peer is AdamW's own AMSGrad.
        "adamw fused amsgrad": (lambda p: torch.optim.AdamW([p], fused=True, amsgrad=True), 99),
        "ours all entangled(4) amsgrad": (
            lambda p: SuperpositionalAdamW(
                [p], coverage="all", circuit=entangled, backend=kernel, amsgrad=True
            ),
            99,
        ),
        "torch-backend paper paper(4)": (
            lambda p: SuperpositionalAdamW([p], backend="torch"),
            torch_backend_max,
        ),
        "torch-backend all entangled(4)": (
            lambda p: SuperpositionalAdamW([p], coverage="all", circuit=entangled, backend="torch"),
            torch_backend_max,
        ),
    }
    if kernel not in available_backends():
        configs = {k: v for k, v in configs.items() if not k.startswith("ours")}
    return configs


def _timed(fn: Callable[[], object], device: str) -> float:
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    start_time = time.perf_counter()
    fn()
    return time.perf_counter() - start_time


def _extra_memory(fn: Callable[[], object], device: str) -> int | None:
    """Bytes a call allocates beyond what is already allocated (its temporaries), on CUDA."""
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def run(sizes: list[int], rounds: int, device: str, torch_backend_max: int, progress: bool = True) -> dict:
    configs = configurations(device, torch_backend_max)
    results = []
    bar = tqdm(
        total=sum(1 + rounds for k in sizes for c in configs.values() if k <= c[1])
        + len(sizes) * (1 + rounds),
        desc="bench step",
        unit="step",
        disable=not progress,
    )
    for k in sizes:
        n = 2**k
        generator = torch.Generator(device="cpu").manual_seed(k)
        shape = (max(n // 1024, 1), min(n, 1024))
        active = {name: factory for name, (factory, max_k) in configs.items() if k <= max_k}
        runners = {}
        extra_memory = {}
        for name, factory in active.items():
            p = torch.nn.Parameter(torch.randn(shape, generator=generator).to(device))
            p.grad = torch.randn(shape, generator=generator).to(device)
            opt = factory(p)
            opt.step()  # warm-up; creates the state
            extra_memory[name] = _extra_memory(opt.step, device)
            bar.update()
            runners[name] = opt.step
        source = torch.randn(shape, generator=generator).to(device)
        target = torch.empty_like(source)
        runners["copy (8 B/param)"] = lambda t=target, s=source: t.copy_(s)
        runners["copy (8 B/param)"]()
        bar.update()
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(rounds):
            for name, fn in runners.items():
                times[name].append(_timed(fn, device))
                bar.update()
        peer = statistics.median(times[PEER])
        for name, samples in times.items():
            median = statistics.median(samples)
            moved = 8 * n if name.startswith("copy") else BYTES_PER_PARAM * n
            results.append(
                {
                    "config": name,
                    "log2_params": k,
                    "params": n,
                    "seconds": median,
                    "seconds_all": samples,
                    "gbytes_per_s": moved / median / 1e9,
                    "vs_adamw_fused": median / peer,
                    "extra_bytes": extra_memory.get(name),
                }
            )
        del runners
    bar.close()
    return {
        "benchmark": "step",
        "device": device,
        "dtype": "float32",
        "rounds": rounds,
        **provenance(),
        "results": results,
    }


def table(data: dict) -> str:
    names = list(dict.fromkeys(r["config"] for r in data["results"]))
    sizes = sorted({r["log2_params"] for r in data["results"]})
    index = {(r["config"], r["log2_params"]): r for r in data["results"]}
    header = ["config", *(f"2^{k}" for k in sizes)]
    rows = []
    for name in names:
        cells = [name]
        for k in sizes:
            r = index.get((name, k))
            cells.append(
                "-"
                if r is None
                else f"{r['seconds'] * 1e3:.3g} ms {r['vs_adamw_fused']:.2f}x {r['gbytes_per_s']:.0f} GB/s"
            )
        rows.append(cells)
    lines = [
        f"step time (median of {data['rounds']} interleaved rounds), ratio to torch AdamW(fused=True), "
        f"achieved bandwidth at 28 B/param ({data['device']}, float32)",
        format_table(header, rows),
    ]
    speedups = []
    for k in sizes:
        ours = index.get(("ours all entangled(4)", k))
        slow = index.get(("torch-backend all entangled(4)", k))
        if ours and slow:
            speedups.append(f"2^{k}: {slow['seconds'] / ours['seconds']:.0f}x")
    if speedups:
        lines.append("fused kernel vs our torch backend, coverage all, entangled(4): " + ", ".join(speedups))
    largest = sizes[-1]
    memory = [
        f"{r['config']}: {r['extra_bytes'] / 2**20:.1f} MiB"
        for r in data["results"]
        if r["log2_params"] == largest and r.get("extra_bytes") is not None
    ]
    if memory:
        lines.append(
            f"memory a step allocates beyond params, grads and states at 2^{largest}: " + ", ".join(memory)
        )
    return "\n".join(lines)


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name in dict.fromkeys(r["config"] for r in data["results"]):
        points = sorted(
            (r["params"], r["seconds"], r["vs_adamw_fused"]) for r in data["results"] if r["config"] == name
        )
        sizes, seconds, ratios = zip(*points)
        left.loglog(sizes, [s * 1e3 for s in seconds], marker="o", label=name)
        if not name.startswith(("copy", "torch-backend", "adamw foreach")):
            right.semilogx(sizes, ratios, marker="o", label=name)
    left.set_xlabel("parameters")
    left.set_ylabel("step time (ms)")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    right.axhline(1.0, color="gray", lw=0.8)
    target = TARGET_ALL[data["device"]]
    right.axhline(target, color="red", lw=0.8, ls="--", label=f"target, coverage all: {target}x")
    right.set_xlabel("parameters")
    right.set_ylabel("time / AdamW(fused=True)")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7)
    env = data["environment"]
    fig.suptitle(f"optimizer step, {data['device']}: {env.get('gpu', env['cpu'])}, commit {data['commit']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def execute(args: argparse.Namespace) -> int:
    sizes = QUICK_SIZES if args.quick else SIZES[args.device]
    if args.max_log2 is not None:
        sizes = [k for k in sizes if k <= args.max_log2]
    data = run(sizes, 3 if args.quick else args.rounds, args.device, TORCH_BACKEND_MAX[args.device])
    print(table(data))
    write_results(data, args, "step", plot)
    return 0
