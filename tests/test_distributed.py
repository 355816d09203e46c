"""Sharded steps (FSDP2's DTensors) and data parallelism against single-process training.

Three levels: the shard plan alone (every local coordinate stepped exactly once, groups as in the
global tensor); several ranks emulated by threads in one process against the unsharded fused step,
over uneven shards (empty ones, ones shorter than ``n - 1``, lengths not a multiple of ``n``); and
real 2-process runs with gloo (FSDP2 and DDP) against one process on the same global batches.
"""

from __future__ import annotations

import functools
import itertools
import subprocess
import sys
import threading
from dataclasses import astuple
from pathlib import Path

import numpy as np
import pytest
import torch

import superpositional as sp
from superpositional.backends.base import StepConfig, StepTensors
from superpositional.backends.kernel import fused_step, simulate
from superpositional.optim.sharded import Shard, plan_tensor, step_sharded

HYPER = dict(lr=0.05, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.01)


def _config(**options) -> StepConfig:
    return StepConfig(**HYPER, **options)


def _covered(circuit_ranges, plain_ranges, pieces, local):
    marks = np.zeros(local, dtype=int)
    for lo, hi in [*circuit_ranges, *plain_ranges, *[(p[0], p[1]) for p in pieces]]:
        marks[lo:hi] += 1
    return marks


@pytest.mark.parametrize("coverage", ["paper", "all"])
def test_plan_steps_every_local_coordinate_once(coverage, rng):
    for _ in range(400):
        n = int(rng.integers(2, 7))
        numel = int(rng.integers(1, 40))
        s = int(rng.integers(0, numel + 1))
        t = int(rng.integers(s, numel + 1))
        plan, _ = plan_tensor(Shard(s, t, numel, 1, group=object()), n, coverage)
        circuit_ranges, plain, pieces = plan.circuit, plan.plain, [astuple(c) for c in plan.crossings]
        assert (_covered(circuit_ranges, plain, pieces, t - s) == 1).all(), (n, numel, s, t)
        for lo, hi, g0, g1 in pieces:
            # A piece is a group's local part, and that group is not wholly local.
            assert g0 <= s + lo and s + hi <= g1 and (g0 < s or g1 > t)
            assert g1 - g0 <= n and (coverage == "paper" or g0 % n == 0)
        for lo, hi in circuit_ranges:
            if coverage == "all":
                assert (s + lo) % n == 0 and ((s + hi) % n == 0 or s + hi == numel)
            else:
                assert s == 0 and lo == 0


def _splits(rng, length, ranks):
    """Uneven contiguous splits of range(length), some empty, some shorter than n - 1."""
    cuts = np.sort(rng.integers(0, length + 1, size=ranks - 1))
    bounds = [0, *cuts.tolist(), length]
    return list(itertools.pairwise(bounds))


def _emulate(
    ranks,
    rng,
    shapes,
    dtype,
    circuit,
    coverage,
    quantum_weight,
    maximize,
    steps,
    amsgrad=False,
    perturbation="paper",
):
    """Step sharded copies on `ranks` threads and the whole tensors in one; returns both results."""
    torch_rng = torch.Generator().manual_seed(int(rng.integers(2**31)))
    full = [torch.randn(s, generator=torch_rng, dtype=torch.float64).to(dtype) for s in shapes]
    state_dtype = torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype
    whole_m = [torch.zeros(p.shape, dtype=state_dtype) for p in full]
    whole_v = [torch.zeros(p.shape, dtype=state_dtype) for p in full]
    whole_steps = [torch.zeros((), dtype=torch.float32) for _ in full]
    whole_max = [torch.zeros(p.shape, dtype=state_dtype) for p in full] if amsgrad else []
    # Shards along dim 0 (whole rows), as FSDP2's, with arbitrary uneven row counts.
    layouts = []
    for p in full:
        rows = p.shape[0] if p.dim() >= 1 else 1
        row = p.numel() // rows if rows else 1
        layouts.append([(a * row, b * row, a, b) for a, b in _splits(rng, rows, ranks)])
    local = [
        [
            p.reshape(-1, *p.shape[1:])[a:b].clone() if p.dim() else p.clone()
            for p, lay in zip(full, layouts)
            for (_, _, a, b) in [lay[r]]
        ]
        for r in range(ranks)
    ]
    local_m = [[torch.zeros(t.shape, dtype=state_dtype) for t in local[r]] for r in range(ranks)]
    local_v = [[torch.zeros(t.shape, dtype=state_dtype) for t in local[r]] for r in range(ranks)]
    local_steps = [[torch.zeros((), dtype=torch.float32) for _ in full] for _ in range(ranks)]
    local_max = [
        [torch.zeros(t.shape, dtype=state_dtype) for t in local[r]] if amsgrad else [] for r in range(ranks)
    ]
    # A 0-d tensor cannot be split: every rank holds it whole (replicated, as FSDP2 leaves it).
    shards = [
        [
            Shard(lay[r][0], lay[r][1], p.numel(), p.dim(), "g", tuple((a, b) for a, b, _, _ in lay))
            if p.dim()
            else Shard(0, 1, 1, 0)
            for p, lay in zip(full, layouts)
        ]
        for r in range(ranks)
    ]
    slots: list = [None] * ranks
    barrier = threading.Barrier(ranks)

    def exchange_for(rank):
        def exchange(group, record):
            slots[rank] = record.clone()
            barrier.wait()
            gathered = list(slots)
            barrier.wait()
            return gathered

        return exchange

    config = _config(
        circuit=circuit,
        coverage=coverage,
        quantum_weight=quantum_weight,
        maximize=maximize,
        amsgrad=amsgrad,
        perturbation=perturbation,
    )
    for step in range(steps):
        scale = 10.0 if step % 2 else 0.1  # AMSGrad's maximum then differs from the latest exp_avg_sq
        grads = [
            scale * torch.randn(p.shape, generator=torch_rng, dtype=torch.float64).to(dtype) for p in full
        ]
        fused_step(StepTensors(full, grads, whole_m, whole_v, whole_steps, whole_max), config)
        local_grads = [
            [
                g.reshape(-1, *g.shape[1:])[lay[r][2] : lay[r][3]].clone() if g.dim() else g.clone()
                for g, lay in zip(grads, layouts)
            ]
            for r in range(ranks)
        ]
        errors = []

        def run(rank, local_grads=local_grads, errors=errors):
            try:
                step_sharded(
                    fused_step,
                    StepTensors(
                        local[rank],
                        local_grads[rank],
                        local_m[rank],
                        local_v[rank],
                        local_steps[rank],
                        local_max[rank],
                    ),
                    config,
                    simulate=simulate,
                    shards=shards[rank],
                    exchange=exchange_for(rank),
                )
            except BaseException as error:  # surfaced below; a dead thread would hang the barrier
                errors.append(error)
                barrier.abort()

        threads = [threading.Thread(target=run, args=(r,)) for r in range(ranks)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
    joined = [
        local[0][i]
        if full[i].dim() == 0
        else torch.cat([local[r][i].reshape(-1) for r in range(ranks)]).reshape(full[i].shape)
        for i in range(len(full))
    ]
    steps_seen = {float(local_steps[r][i]) for r in range(ranks) for i in range(len(full))}
    return full, joined, steps_seen


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("coverage", ["paper", "all"])
@pytest.mark.parametrize("preset", ["paper", "entangled"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_emulated_shards_match_the_unsharded_step(coverage, preset, dtype, amsgrad, rng):
    n = int(rng.integers(3, 6))
    circuit = getattr(sp.circuits, preset)(n)
    shapes = [(int(rng.integers(1, 30)),), (int(rng.integers(2, 9)), int(rng.integers(1, 5))), (7,), (2,), ()]
    ranks = int(rng.integers(2, 5))
    full, joined, steps_seen = _emulate(
        ranks, rng, shapes, dtype, circuit, coverage, 0.7, bool(rng.integers(2)), steps=4, amsgrad=amsgrad
    )
    tol = {torch.float32: 2e-6, torch.float64: 1e-13, torch.bfloat16: 1e-2}[dtype]
    for expected, got in zip(full, joined):
        torch.testing.assert_close(got.double(), expected.double(), atol=tol, rtol=tol)
    assert steps_seen == {4.0}


@pytest.mark.parametrize("coverage", ["paper", "all"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_emulated_shards_match_the_unsharded_step_with_the_preconditioned_term(coverage, dtype, rng):
    # The crossing groups go through the torch rule (update.adamw_update), the rest through the kernel.
    shapes = [(int(rng.integers(1, 30)),), (int(rng.integers(2, 9)), int(rng.integers(1, 5))), (7,), ()]
    full, joined, _ = _emulate(
        3,
        rng,
        shapes,
        dtype,
        sp.circuits.entangled(4),
        coverage,
        3.0,
        False,
        steps=4,
        perturbation="preconditioned",
    )
    tol = {torch.float32: 2e-6, torch.bfloat16: 1e-2}[dtype]
    for expected, got in zip(full, joined):
        torch.testing.assert_close(got.double(), expected.double(), atol=tol, rtol=tol)


def test_crossing_groups_change_the_result(rng):
    """The test above can fail: stepping 1-D shards with local groups gives other numbers."""
    circuit = sp.circuits.entangled(4)
    full = torch.randn(10, dtype=torch.float64)
    grad = torch.randn(10, dtype=torch.float64)
    whole = full.clone()
    m, v, step = torch.zeros(10, dtype=torch.float64), torch.zeros(10, dtype=torch.float64), torch.zeros(())
    config = _config(circuit=circuit, coverage="all", quantum_weight=0.7, maximize=False)
    fused_step(StepTensors([whole], [grad], [m], [v], [step]), config)
    pieces = [full[:5].clone(), full[5:].clone()]
    for piece, g in zip(pieces, (grad[:5], grad[5:])):
        z = torch.zeros_like(piece)
        fused_step(StepTensors([piece], [g.clone()], [z], [z.clone()], [torch.zeros(())]), config)
    assert not torch.allclose(torch.cat(pieces), whole, atol=1e-12)


# -- real processes: 2 ranks with gloo against one process on the same global batches ---------------

WORKER = Path(__file__).with_name("distributed_worker.py")


@functools.cache
def _single_process(coverage: str, folder: Path) -> dict[str, torch.Tensor]:
    return _run_worker("single", coverage, folder / f"single-{coverage}.pt")


def _run_worker(mode: str, coverage: str, out: Path) -> dict[str, torch.Tensor]:
    done = subprocess.run(
        [sys.executable, str(WORKER), mode, coverage, str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
@pytest.mark.parametrize(("mode", "coverage"), [("fsdp", "all"), ("fsdp", "paper"), ("ddp", "all")])
def test_two_processes_match_one_after_20_steps(mode, coverage, tmp_path, tmp_path_factory):
    single = _single_process(coverage, tmp_path_factory.getbasetemp())
    sharded = _run_worker(mode, coverage, tmp_path / f"{mode}.pt")
    initial = _initial_parameters()
    assert single.keys() == sharded.keys() == initial.keys()
    for name in single:
        # Gradients averaged across ranks round differently from one process: float32 rounding only.
        torch.testing.assert_close(sharded[name], single[name], atol=2e-5, rtol=1e-4, msg=name)
        assert not torch.allclose(single[name], initial[name], atol=1e-3), f"{name} did not train"


def _initial_parameters() -> dict[str, torch.Tensor]:
    sys.path.insert(0, str(WORKER.parent))
    try:
        from distributed_worker import Model
    finally:
        sys.path.pop(0)
    torch.manual_seed(0)
    return {name: p.detach().clone() for name, p in Model().named_parameters()}
