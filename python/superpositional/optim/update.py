r"""The update rule in PyTorch: the one place in Python where it is written.

.. math::

    \theta &= p \quad\text{(the values at the start of the step: the circuits see these)}\\
    p &\leftarrow p\,(1 - lr\cdot wd)\\
    m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad v \leftarrow \beta_2 v + (1-\beta_2)\, g^2\\
    p &\leftarrow p - lr\Big(\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon} + \lambda\, e\, g\Big)
    \quad\text{(perturbation "paper")}\\
    p &\leftarrow p - lr\,\frac{m/(1-\beta_1^t) + \lambda\, e\, g}{\sqrt{v/(1-\beta_2^t)} + \epsilon}
    \quad\text{(perturbation "preconditioned")}

with AMSGrad (``amsgrad=True``, as torch) ``v_max = max(v_max, v)`` taking ``v``'s place under the root
(docs/design.md, *The mathematics*). :func:`adamw_update` applies it to any set of coordinates in
torch's order of operations (``torch.optim.AdamW``'s single-tensor path); the strategies that do
not run the fused kernel everywhere use it: :func:`reference_step` for every coordinate (the torch
and Aer backends), the sharded step for groups that cross shards, and the Qiskit step for the
coordinates a device's result covers. The compiled kernels have the same rule once in C++
(``csrc/adamw.h``) and are tested against :func:`reference_step`.
"""

from __future__ import annotations

import math

import torch

from ..backends.base import Batch, SimulateFn, StepConfig, StepTensors
from ..geometry import compute_dtype, gather_groups, scatter_groups
from .rounding import FORMATS, round_stochastically, rounding_bits, rounding_key

__all__ = ["adamw_update", "expectations", "reference_step"]


def adamw_update(
    theta: torch.Tensor,
    g: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    t: float,
    e: torch.Tensor | None,
    config: StepConfig,
    v_max: torch.Tensor | None = None,
) -> torch.Tensor:
    """The new parameter values (in ``theta``'s dtype) from the start-of-step values ``theta``.

    ``theta``, ``g`` (already negated under ``maximize``) and ``e`` (the expectations at these
    coordinates, ``None`` for no circuit term) are in the compute dtype; ``m``, ``v`` and, under
    ``config.amsgrad``, ``v_max`` (the running maximum of ``v``, whose square root then divides)
    are updated in place; ``t`` is this step's number (the counter after its increment). States in
    a 16-bit dtype (``state_dtype="param"``) are updated in the compute dtype and rounded once, as
    the kernels and torch's fused AdamW do.
    """
    if m.dtype != theta.dtype:
        states = [m, v] + ([v_max] if v_max is not None else [])
        work = [s.to(theta.dtype) for s in states]
        work_max = work[2] if v_max is not None else None
        updated = adamw_update(theta, g, work[0], work[1], t, e, config, work_max)
        for state, value in zip(states, work):
            state.copy_(value)
        return updated
    lr = float(config.lr)
    updated = theta * (1 - lr * config.weight_decay)
    m.lerp_(g, 1 - config.beta1)
    v.mul_(config.beta2).addcmul_(g, g, value=1 - config.beta2)
    bias_correction1 = 1 - config.beta1**t
    bias_correction2_sqrt = math.sqrt(1 - config.beta2**t)
    if config.amsgrad:
        if v_max is None:
            raise ValueError("an AMSGrad step needs max_exp_avg_sq")
        torch.maximum(v_max, v, out=v_max)
        v = v_max
    denom = (v.sqrt() / bias_correction2_sqrt).add_(config.eps)
    term = e is not None and config.quantum_weight != 0
    if term and config.perturbation == "preconditioned":
        # m_hat + lambda e g under Adam's division: m + lambda (1 - beta1^t) e g in m's place.
        moment = m + (e * g) * (config.quantum_weight * bias_correction1)
        return updated.addcdiv_(moment, denom, value=-lr / bias_correction1)
    updated.addcdiv_(m, denom, value=-lr / bias_correction1)
    if term:
        updated.add_(e * g, alpha=-lr * config.quantum_weight)
    return updated


def expectations(
    config: StepConfig, theta: torch.Tensor, g: torch.Tensor, simulate: SimulateFn
) -> torch.Tensor:
    """``e`` for every element of a tensor (0 off-group), each group's circuit run by ``simulate``."""
    circuit = config.circuit
    n = circuit.n_qubits
    rows = gather_groups(theta, n, config.coverage)
    batch = Batch(
        rows if circuit.uses_params else None,
        gather_groups(g, n, config.coverage) if circuit.uses_grads else None,
        rows.shape[0],
        theta.dtype,
        theta.device,
    )
    e, _ = simulate(circuit, batch)
    return scatter_groups(e, theta, n, config.coverage)


def reference_step(tensors: StepTensors, config: StepConfig, *, simulate: SimulateFn) -> None:
    """One step of every tensor by :func:`adamw_update`, ``e`` from ``simulate``, tensor by tensor;
    16-bit parameters rounded stochastically under ``config.rounding_seed`` (:mod:`.rounding`).

    The step counter is read on the host (a synchronisation for GPU tensors: this is the reference,
    not the fast path).
    """
    streams = tensors.rounding_streams or [0] * len(tensors.params)
    for (p, g, m, v, step, v_max), stream in zip(tensors.rows(), streams):
        compute = compute_dtype(p.dtype)
        g = g.to(compute)
        if config.maximize:
            g = -g
        theta = p.to(compute, copy=True)
        step += 1
        e = None
        if config.quantum_weight != 0 and p.numel() > 0:
            e = expectations(config, theta, g, simulate)
        updated = adamw_update(theta, g, m, v, float(step), e, config, v_max)
        if config.rounding_seed is not None and p.dtype in FORMATS:
            key = rounding_key(config.rounding_seed, stream, int(step))
            index = torch.arange(p.numel(), device=p.device).view(p.shape)
            updated = round_stochastically(updated, p.dtype, rounding_bits(key, index))
        p.copy_(updated)
