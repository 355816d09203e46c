r"""The optimizer step of a param group whose circuits run on a Qiskit target.

A step never waits for a job (see :mod:`.qiskit_dispatch` for refresh and staleness). It is:

1. take in finished jobs; if a refresh is due, snapshot the circuits' inputs (``theta`` = the
   parameters as the step starts, ``g`` with the sign the step uses) and submit them;
2. the kernel's fused step, exactly as without a target;
3. if a usable result is at hand, for each circuit it covers:
   ``p -= lr * lambda * (e_device - e_kernel) * g`` on that circuit's coordinates, where
   ``e_kernel`` is what the fused step used: the kernel's expectation of the same circuit for this
   step's inputs (simulated again, before the step changes ``p``).

So the step equals the fused step with ``e = e_device`` on the covered coordinates and the kernel's
``e`` elsewhere, up to one more rounding of the covered coordinates (at most one unit in the last
place of the parameter's dtype). AdamW and every other circuit stay in the fused kernel: the extra
work is proportional to the circuits the device evaluated (at most the cost guard), not to the
parameters.

**Cost guard.** A step has one circuit per group of ``n`` coordinates (one per tensor with
``coverage="paper"``). When that is more than the target's ``circuits_per_job``, ``on_excess``
decides: ``"sample"`` sends a uniformly random subset of that size (drawn afresh at each refresh;
the others are simulated by the kernel), ``"error"`` refuses in :func:`check` before anything
changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from .qiskit_dispatch import Dispatcher, Evaluation

if TYPE_CHECKING:  # pragma: no cover
    from ..circuit import Circuit
    from .qiskit_target import QiskitTarget


def circuit_count(p: torch.Tensor, n: int, coverage: str) -> int:
    """How many circuits (groups of ``n`` coordinates) a step evaluates for tensor ``p``."""
    if p.numel() == 0:
        return 0
    if coverage == "paper":
        return 1
    rows = p.shape[0] if p.dim() >= 2 else 1
    return rows * math.ceil(p.numel() // rows / n)


def check(
    target: QiskitTarget, circuit: Circuit, coverage: str, params: list[torch.Tensor], quantum_weight: float
) -> None:
    """Raise before the step changes anything if the target cannot take this group's circuits."""
    target.check_circuit(circuit)
    if quantum_weight == 0 or target.options["on_excess"] != "error":
        return
    total = sum(circuit_count(p, circuit.n_qubits, coverage) for p in params)
    if total > target.circuits_per_job:
        raise ValueError(
            f"this step has {total} circuits but the Qiskit target's cost guard allows "
            f"{target.circuits_per_job} per job (max_circuits_per_job, max_shots_per_job / shots); "
            "raise the guard, use coverage='paper', or on_excess='sample' to send a random subset"
        )


def group_index(
    t: torch.Tensor, n: int, coverage: str, groups: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices ``[S, n]`` into ``t`` of the coordinates of ``groups`` (rows of ``group_rows``),
    and which of them exist (a short tail group has fewer than ``n``)."""
    if coverage == "paper":  # the one group: the first n coordinates of the flattened tensor
        rows, length = 1, t.numel()
    else:
        rows = t.shape[0] if t.dim() >= 2 else 1
        length = t.numel() // rows
    per_row = -(-length // n)
    groups = groups.to(t.device)
    columns = (groups % per_row).unsqueeze(1) * n + torch.arange(n, device=t.device)
    valid = columns < length
    return (groups // per_row).unsqueeze(1) * length + columns.clamp(max=length - 1), valid


def groups_at(t: torch.Tensor, n: int, coverage: str, groups: torch.Tensor) -> torch.Tensor:
    """Rows ``groups`` of ``group_rows(t, n, coverage)`` in float64, without forming the others (a
    refresh that samples 100 circuits of a large tensor reads 100 groups, not the tensor)."""
    index, valid = group_index(t, n, coverage, groups)
    values = t.detach().reshape(-1)[index].to(torch.float64)
    return torch.where(valid, values, 0.0)  # missing inputs of a short tail group read zeros


def snapshot(
    dispatcher: Dispatcher,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    indices: list[int],
    n: int,
    coverage: str,
    sign: float,
) -> tuple[Evaluation, torch.Tensor, torch.Tensor]:
    """The rows ``[R, n]`` of theta and ``sign * g`` that a job evaluates, sampled down to the cost
    guard (float64, on the CPU)."""
    counts = [circuit_count(p, n, coverage) for p in params]
    total, cap = sum(counts), dispatcher.target.circuits_per_job
    if total > cap:
        chosen = torch.from_numpy(dispatcher.rng.choice(total, size=cap, replace=False)).sort().values
    else:
        chosen = torch.arange(total)
    thetas, g_rows, tensors, rows = [], [], [], []
    start = 0
    for p, g, index, count in zip(params, grads, indices, counts):
        mine = chosen[(chosen >= start) & (chosen < start + count)] - start
        start += count
        if mine.numel() == 0:
            continue
        thetas.append(groups_at(p, n, coverage, mine).cpu())
        g_rows.append(sign * groups_at(g, n, coverage, mine).cpu())
        tensors.append(torch.full((mine.numel(),), index, dtype=torch.int64))
        rows.append(mine)
    return (
        Evaluation(dispatcher.clock, torch.cat(tensors), torch.cat(rows)),
        torch.cat(thetas),
        torch.cat(g_rows),
    )


def correction(
    evaluation: Evaluation,
    index: int,
    p: torch.Tensor,
    g: torch.Tensor,
    sign: float,
    circuit: Circuit,
    coverage: str,
    simulate_rows: Callable[..., tuple],
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """For tensor ``index``: the flat indices of the coordinates the result covers, and
    ``(e_device - e_kernel) * sign * g`` at each (math dtype); ``None`` if it covers none.

    Call it before the step changes ``p``: ``e_kernel`` is for this step's ``theta``."""
    n = circuit.n_qubits
    mine = evaluation.tensors == index
    groups, measured = evaluation.rows[mine], evaluation.values[mine]
    keep = groups < circuit_count(p, n, coverage)  # rows a checkpoint holds for a tensor of another shape
    groups, measured = groups[keep], measured[keep]
    if groups.numel() == 0:
        return None
    compute = torch.float64 if p.dtype == torch.float64 else torch.float32
    at, valid = group_index(p, n, coverage, groups)
    theta_rows = torch.where(valid, p.detach().reshape(-1)[at].to(compute), 0.0)
    g_rows = torch.where(valid, sign * g.reshape(-1)[at].to(compute), 0.0)
    e_kernel, _ = simulate_rows(
        circuit,
        theta_rows if circuit.uses_params else None,
        g_rows if circuit.uses_grads else None,
        batch=groups.numel(),
        dtype=compute,
        device=p.device,
        return_state=False,
    )
    term = (measured.to(p.device, compute) - e_kernel) * g_rows
    return at[valid], term[valid]


def apply_correction(
    p: torch.Tensor, at: torch.Tensor, term: torch.Tensor, scale: float | torch.Tensor
) -> None:
    """``p[at] -= scale * term`` (flat indices), in the term's math dtype, rounding to ``p``'s once."""
    work = p if p.is_contiguous() else p.contiguous()
    flat = work.view(-1)
    flat[at] = (flat[at].to(term.dtype) - scale * term).to(p.dtype)
    if work is not p:
        p.copy_(work)


def step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    steps: list[torch.Tensor],
    *,
    lr: float | torch.Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    quantum_weight: float,
    maximize: bool,
    circuit: Circuit,
    coverage: str,
    dispatcher: Dispatcher,
    indices: list[int],
    kernel_step: Callable[..., None],
    simulate_rows: Callable[..., tuple],
) -> None:
    """One step of a param group on a Qiskit target (the module doc says what it does).

    ``indices`` are the positions of ``params`` in the group's ``"params"`` (stable across steps,
    unlike the list of tensors that have a gradient); ``kernel_step`` and ``simulate_rows`` are the
    kernel backend's fused step and batched simulation for the parameters' device.
    """
    hyper = dict(
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=weight_decay,
        maximize=maximize,
        circuit=circuit,
        coverage=coverage,
    )
    dispatcher.begin_step(circuit)
    if quantum_weight == 0:  # nothing to evaluate: no job is worth its cost
        kernel_step(params, grads, exp_avgs, exp_avg_sqs, steps, quantum_weight=0.0, **hyper)
        return

    sign = -1.0 if maximize else 1.0  # the circuits read g with the sign the step uses, as the kernel does
    if dispatcher.due():
        evaluation, theta_rows, g_rows = snapshot(
            dispatcher, params, grads, indices, circuit.n_qubits, coverage, sign
        )
        dispatcher.submit(evaluation, circuit, theta_rows, g_rows)
    evaluation = dispatcher.usable()
    corrections = []
    if evaluation is not None:  # before the fused step: e_kernel is for the inputs of this step
        for p, g, index in zip(params, grads, indices):
            found = correction(evaluation, index, p, g, sign, circuit, coverage, simulate_rows)
            if found is not None:
                corrections.append((p, *found))
    kernel_step(params, grads, exp_avgs, exp_avg_sqs, steps, quantum_weight=quantum_weight, **hyper)
    scale = lr * quantum_weight
    for p, at, term in corrections:
        apply_correction(p, at, term, scale)


def make_stepper(
    dispatcher: Dispatcher,
    indices: list[int],
    kernel_step: Callable[..., None],
    simulate_rows: Callable[..., tuple],
) -> Callable[..., None]:
    """:func:`step` bound to one group's dispatcher, with the signature of the other backends' steps."""

    def stepper(*args: Any, **kwargs: Any) -> None:
        step(
            *args,
            dispatcher=dispatcher,
            indices=indices,
            kernel_step=kernel_step,
            simulate_rows=simulate_rows,
            **kwargs,
        )

    return stepper
