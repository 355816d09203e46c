"""Training runs for tests/test_distributed.py: one process, or 2 ranks with gloo under FSDP2 or DDP.

``python tests/distributed_worker.py {single,fsdp,ddp} COVERAGE OUT`` trains the same small model
on the same global batches for STEPS steps with SuperpositionalAdamW and saves the final
parameters (full tensors) to OUT. Each rank of a 2-process run takes half of every global batch;
FSDP2 and DDP average the gradients, so every run follows the same mathematics.
"""

from __future__ import annotations

import os
import socket
import sys

import torch

import superpositional as sp

STEPS = 20
GLOBAL_BATCH = 8


class Model(torch.nn.Module):
    """Shapes chosen to make shards uneven: 7 and 3 rows, a 13-element and a 3-element 1-D tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.first = torch.nn.Linear(6, 7)
        self.second = torch.nn.Linear(7, 3)
        self.gain = torch.nn.Parameter(torch.linspace(0.5, 1.5, 13))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.first(x))
        return self.second(hidden) * self.gain[:3] + self.gain[3:].sum() * 0.01


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [
        (torch.randn(GLOBAL_BATCH, 6, generator=generator), torch.randn(GLOBAL_BATCH, 3, generator=generator))
        for _ in range(STEPS)
    ]


def train(model: torch.nn.Module, coverage: str, rank: int = 0, world: int = 1) -> None:
    optimizer = sp.SuperpositionalAdamW(
        model.parameters(),
        lr=0.02,
        weight_decay=0.01,
        quantum_weight=0.5,
        circuit=sp.circuits.entangled(4),
        coverage=coverage,
    )
    share = GLOBAL_BATCH // world
    for x, y in batches():
        x, y = x[rank * share : (rank + 1) * share], y[rank * share : (rank + 1) * share]
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()


def full_parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for name, p in model.named_parameters():
        value = p.full_tensor() if hasattr(p, "full_tensor") else p
        out[name.removeprefix("module.")] = value.detach().clone()
    return out


def _rank(rank: int, mode: str, coverage: str, out: str, port: int) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = Model()
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        fully_shard(model.first)
        fully_shard(model.second)
        fully_shard(model)
    else:
        model = torch.nn.parallel.DistributedDataParallel(model)
    train(model, coverage, rank, 2)
    params = full_parameters(model)
    if rank == 0:
        torch.save(params, out)
    dist.barrier()
    dist.destroy_process_group()
    # The results are saved. End the rank here: with torch 2.13, a rank that had FSDP2 and gloo
    # aborts now and then in the interpreter's own teardown after destroy_process_group ("terminate
    # called without an active exception", about one run in six on 2 cores), which is not the
    # behaviour under test.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(mode: str, coverage: str, out: str) -> None:
    if mode == "single":
        torch.manual_seed(0)
        model = Model()
        train(model, coverage)
        torch.save(full_parameters(model), out)
        return
    torch.multiprocessing.spawn(_rank, args=(mode, coverage, out, _free_port()), nprocs=2)


if __name__ == "__main__":
    main(*sys.argv[1:4])
