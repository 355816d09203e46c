"""A few optimizer steps for Nsight Compute to profile (bench/h200.sh profile): one float32
parameter of 2^26 elements stepped by torch's fused AdamW and by ours (coverage "all",
entangled(4); coverage "paper"), each three times so that ncu can skip the warm-up launches.

    ncu --clock-control none --kernel-name regex:'step_kernel|adam' --launch-skip 2 ... \
        python3 bench/profile_step.py
"""

from __future__ import annotations

import argparse

import torch

import superpositional as sp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2", type=int, default=26, help="parameter count, as log2 (default 26)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "float64"])
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    n = 2**args.log2
    shape = (n // 1024, 1024)
    configs = {
        "adamw fused": lambda p: torch.optim.AdamW([p], fused=True),
        "ours all entangled(4)": lambda p: sp.SuperpositionalAdamW(
            [p], coverage="all", circuit=sp.circuits.entangled(4)
        ),
        "ours paper paper(4)": lambda p: sp.SuperpositionalAdamW([p]),
    }
    for name, factory in configs.items():
        p = torch.nn.Parameter(torch.randn(shape, device="cuda", dtype=dtype))
        p.grad = torch.randn_like(p)
        opt = factory(p)
        torch.cuda.nvtx.range_push(name)
        for _ in range(3):
            opt.step()
        torch.cuda.synchronize()
        torch.cuda.nvtx.range_pop()
        print(f"{name}: stepped", flush=True)
        del opt, p


if __name__ == "__main__":
    main()
