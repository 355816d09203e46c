r"""The optimizer step of a param group whose circuits run on a Qiskit target.

A step never waits for a job (``superpositional.backends.qiskit.dispatch`` has the refresh and
staleness rules). It is:

1. take in finished jobs; if a refresh is due, snapshot the circuits' inputs (``theta`` = the
   parameters as the step starts, ``g`` with the sign the step uses) and submit them;
2. if a usable result is at hand, keep the start-of-step values (``p``, ``m``, ``v``, ``g``) of
   the coordinates its circuits cover;
3. the kernel's fused step, exactly as without a target;
4. the covered coordinates again, by the update rule (:func:`~.update.adamw_update`) from their
   start-of-step values with ``e`` = the device's expectations, replacing what the kernel wrote.

So the step is the update rule with ``e = e_device`` on the covered coordinates and the kernel's
``e`` elsewhere. AdamW and every other circuit stay in the fused kernel: the extra work is
proportional to the circuits the device evaluated (at most the cost guard), not to the parameters.

**Cost guard.** A step has one circuit per group of ``n`` coordinates (one per tensor with
``coverage="paper"``). When that is more than the target's ``circuits_per_job``, ``on_excess``
decides: ``"sample"`` sends a uniformly random subset of that size (drawn afresh at each refresh;
the others are simulated by the kernel), ``"error"`` refuses in :func:`check` before anything
changes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from ..backends.base import StepConfig, StepFn, StepTensors
from ..backends.qiskit.dispatch import Dispatcher, Evaluation
from ..backends.qiskit.target import QiskitTarget, QiskitTargetWarning, scrubbed
from ..geometry import compute_dtype, gather_groups, group_count, group_index
from .update import adamw_update

__all__ = ["check", "snapshot", "step"]


def check(target: QiskitTarget, config: StepConfig, params: list[torch.Tensor]) -> bool:
    """Raise before the step changes anything if the target cannot take this group's circuits as
    configured (wider than the device, or over the cost guard with ``on_excess="error"``). False if
    the target itself failed to answer (its width is asked of the backend): the step then runs on
    the simulator, with a warning whose text is scrubbed of credentials, as for a failed job."""
    try:
        with scrubbed():
            width = target.num_qubits
    except Exception as error:
        warnings.warn(
            f"the Qiskit target {target.name!r} could not be asked for its width "
            f"({type(error).__name__}: {error}); this step uses the simulator",
            QiskitTargetWarning,
            stacklevel=5,
        )
        return False
    if config.circuit.n_qubits > width:
        target.check_circuit(config.circuit)  # raises, naming both widths
    if config.quantum_weight == 0 or target.options["on_excess"] != "error":
        return True
    n = config.circuit.n_qubits
    total = sum(group_count(p.shape, n, config.coverage) for p in params)
    if total > target.circuits_per_job:
        raise ValueError(
            f"this step has {total} circuits but the Qiskit target's cost guard allows "
            f"{target.circuits_per_job} per job (max_circuits_per_job, max_shots_per_job / shots); "
            "raise the guard, use coverage='paper', or on_excess='sample' to send a random subset"
        )
    return True


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
    guard (float64, on the CPU). Only the chosen groups are read: a refresh that samples 100
    circuits of a large tensor reads 100 groups, not the tensor."""
    counts = [group_count(p.shape, n, coverage) for p in params]
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
        thetas.append(gather_groups(p.detach(), n, coverage, mine).to("cpu", torch.float64))
        g_rows.append(sign * gather_groups(g, n, coverage, mine).to("cpu", torch.float64))
        tensors.append(torch.full((mine.numel(),), index, dtype=torch.int64))
        rows.append(mine)
    return (
        Evaluation(dispatcher.clock, torch.cat(tensors), torch.cat(rows)),
        torch.cat(thetas),
        torch.cat(g_rows),
    )


@dataclass
class _Covered:
    """The coordinates of one tensor that a device's result covers, with their start-of-step values."""

    tensor: int
    at: torch.Tensor  # flat indices [K]
    e: torch.Tensor  # the device's expectations [K], compute dtype
    theta: torch.Tensor  # start-of-step parameter values [K], compute dtype
    g: torch.Tensor  # the gradient with the step's sign [K], compute dtype
    m: torch.Tensor  # start-of-step exp_avg [K]
    v: torch.Tensor  # start-of-step exp_avg_sq [K]
    v_max: torch.Tensor | None  # start-of-step max_exp_avg_sq [K] under AMSGrad


def _covered(
    evaluation: Evaluation, tensor: int, index: int, tensors: StepTensors, config: StepConfig, sign: float
) -> _Covered | None:
    """What ``evaluation`` covers of tensor ``tensor`` (position ``index`` in its param group)."""
    p, g = tensors.params[tensor], tensors.grads[tensor]
    n = config.circuit.n_qubits
    mine = evaluation.tensors == index
    groups, measured = evaluation.rows[mine], evaluation.values[mine]
    keep = groups < group_count(p.shape, n, config.coverage)  # a checkpoint's rows for another shape
    groups, measured = groups[keep], measured[keep]
    if groups.numel() == 0:
        return None
    compute = compute_dtype(p.dtype)
    at, valid = group_index(p.shape, n, config.coverage, groups, p.device)
    at = at[valid]
    return _Covered(
        tensor=tensor,
        at=at,
        e=measured.to(p.device, compute)[valid],
        theta=p.detach().reshape(-1)[at].to(compute),
        g=sign * g.reshape(-1)[at].to(compute),
        m=tensors.exp_avgs[tensor].reshape(-1)[at],
        v=tensors.exp_avg_sqs[tensor].reshape(-1)[at],
        v_max=tensors.max_exp_avg_sqs[tensor].reshape(-1)[at] if tensors.max_exp_avg_sqs else None,
    )


def _write(t: torch.Tensor, at: torch.Tensor, values: torch.Tensor) -> None:
    """``t.flatten()[at] = values``, in place, for any layout of ``t``."""
    work = t if t.is_contiguous() else t.contiguous()
    work.view(-1)[at] = values.to(t.dtype)
    if work is not t:
        t.copy_(work)


def step(
    tensors: StepTensors,
    config: StepConfig,
    *,
    dispatcher: Dispatcher,
    indices: list[int],
    fused_step: StepFn,
) -> None:
    """One step of a param group on a Qiskit target (the module doc says what it does).

    ``indices`` are the positions of the tensors in the group's ``"params"`` (stable across steps,
    unlike the list of tensors that have a gradient); ``fused_step`` is the kernel backend's step
    for the parameters' device.
    """
    dispatcher.begin_step(config.circuit)
    if config.quantum_weight == 0:  # nothing to evaluate: no job is worth its cost
        fused_step(tensors, config)
        return
    sign = -1.0 if config.maximize else 1.0  # the circuits read g with the step's sign, as the kernel does
    if dispatcher.due():
        evaluation, theta_rows, g_rows = snapshot(
            dispatcher, tensors.params, tensors.grads, indices, config.circuit.n_qubits, config.coverage, sign
        )
        dispatcher.submit(evaluation, config.circuit, theta_rows, g_rows)
    evaluation = dispatcher.usable()
    covered: list[_Covered] = []
    if evaluation is not None:  # before the fused step changes the start-of-step values
        for tensor, index in enumerate(indices):
            found = _covered(evaluation, tensor, index, tensors, config, sign)
            if found is not None:
                covered.append(found)
    fused_step(tensors, config)
    for c in covered:
        t = float(tensors.steps[c.tensor])  # this step's number: the kernel has counted it
        updated = adamw_update(c.theta, c.g, c.m, c.v, t, c.e, config, c.v_max)
        _write(tensors.params[c.tensor], c.at, updated)
        _write(tensors.exp_avgs[c.tensor], c.at, c.m)
        _write(tensors.exp_avg_sqs[c.tensor], c.at, c.v)
        if c.v_max is not None:
            _write(tensors.max_exp_avg_sqs[c.tensor], c.at, c.v_max)
