"""Optimizer step time per GPU under FSDP2: SuperpositionalAdamW against torch's fused AdamW.

Run with one process per GPU:  python -m torch.distributed.run --nproc-per-node 2 bench/fsdp.py

A stack of Linear layers (``--layers`` x ``--width``^2, with biases), each layer and the whole model
wrapped by ``fully_shard``; every rank steps its shards. Gradients are set once, then each
optimizer is timed over ``--steps`` steps with CUDA events (median of the per-step times, the
slowest rank reported). The same run checks, on 3 steps, that the sharded result equals a
single-GPU step of the full parameters on rank 0 (within float32 rounding). Writes a table and
``fsdp.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

import superpositional as sp

CONFIGS = {
    "torch AdamW(fused=True)": lambda params: torch.optim.AdamW(params, lr=1e-3, fused=True),
    "ours, coverage paper, paper(4)": lambda params: sp.SuperpositionalAdamW(
        params, lr=1e-3, quantum_weight=0.1, circuit=sp.circuits.paper(4), coverage="paper"
    ),
    "ours, coverage all, entangled(4)": lambda params: sp.SuperpositionalAdamW(
        params, lr=1e-3, quantum_weight=0.1, circuit=sp.circuits.entangled(4), coverage="all"
    ),
}


def build(layers: int, width: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(*(torch.nn.Linear(width, width) for _ in range(layers))).cuda()


def set_grads(model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator(device="cuda").manual_seed(seed)
    for p in model.parameters():
        full = torch.randn(p.shape, device="cuda", generator=generator)
        if hasattr(p, "to_local"):  # the local shard of the same global gradient on every rank
            from torch.distributed.tensor import distribute_tensor

            p.grad = distribute_tensor(full, p.device_mesh, p.placements)
        else:
            p.grad = full


def time_steps(optimizer: torch.optim.Optimizer, steps: int) -> float:
    for _ in range(3):
        optimizer.step()
    times = []
    for _ in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        optimizer.step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def check_against_one_gpu(args: argparse.Namespace, name: str) -> float:
    """Largest difference after 3 steps between the sharded run and one GPU stepping everything."""
    sharded = build(args.layers, args.width, seed=1)
    for layer in sharded:
        fully_shard(layer)
    fully_shard(sharded)
    optimizer = CONFIGS[name](sharded.parameters())
    reference = build(args.layers, args.width, seed=1) if dist.get_rank() == 0 else None
    reference_optimizer = CONFIGS[name](reference.parameters()) if reference is not None else None
    for step in range(3):
        set_grads(sharded, seed=100 + step)
        optimizer.step()
        if reference is not None:
            set_grads(reference, seed=100 + step)
            reference_optimizer.step()
    worst = 0.0
    expected = dict(reference.named_parameters()) if reference is not None else {}
    for name_p, p in sharded.named_parameters():
        full = p.full_tensor()  # a collective: every rank calls it
        if name_p in expected:
            worst = max(worst, float((full - expected[name_p]).abs().max()))
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    rank = int(os.environ["RANK"])
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl")
    world = dist.get_world_size()
    rows = []
    for name, make in CONFIGS.items():
        model = build(args.layers, args.width, seed=0)
        for layer in model:
            fully_shard(layer)
        fully_shard(model)
        set_grads(model, seed=1)
        optimizer = make(model.parameters())
        ms = torch.tensor(time_steps(optimizer, args.steps), device="cuda")
        dist.all_reduce(ms, op=dist.ReduceOp.MAX)
        error = check_against_one_gpu(args, name)
        local = sum(p.to_local().numel() for p in model.parameters())
        rows.append(
            {
                "optimizer": name,
                "ms_per_step": float(ms),
                "params_per_gpu": local,
                "max_abs_diff_vs_one_gpu": error,
            }
        )
        del model, optimizer
        torch.cuda.empty_cache()
    if rank == 0:
        baseline = rows[0]["ms_per_step"]
        total = sum(p.numel() for p in build(args.layers, args.width, 0).parameters())
        print(
            f"FSDP2 on {world} x {torch.cuda.get_device_name()}, {total / 1e6:.1f} M parameters "
            f"({args.layers} x Linear({args.width}, {args.width})), float32, median of {args.steps} steps"
        )
        print(f"{'optimizer':36} {'ms/step per GPU':>16} {'vs fused AdamW':>15} {'max |diff| vs 1 GPU':>20}")
        for row in rows:
            row["ratio"] = row["ms_per_step"] / baseline
            print(
                f"{row['optimizer']:36} {row['ms_per_step']:16.3f} {row['ratio']:14.2f}x "
                f"{row['max_abs_diff_vs_one_gpu']:20.2e}"
            )
        args.out.mkdir(parents=True, exist_ok=True)
        info = {
            "benchmark": "fsdp",
            "world_size": world,
            "gpu": torch.cuda.get_device_name(),
            "torch": torch.__version__,
            "layers": args.layers,
            "width": args.width,
            "parameters": total,
            "results": rows,
        }
        (args.out / "fsdp.json").write_text(json.dumps(info, indent=2))
        print(f"wrote {args.out / 'fsdp.json'}")
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
