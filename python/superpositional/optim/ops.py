"""The fused step as a PyTorch custom op, so that ``torch.compile`` traces ``optimizer.step()`` whole.

The kernels take raw pointers, which Dynamo cannot trace; registered with
:func:`torch.library.custom_op` (its mutated arguments declared, a fake implementation that
does nothing, as the op returns nothing), the step is one opaque node in the compiled graph
instead of a graph break. Eager steps call the kernels directly; under ``torch.compile`` the
optimizer calls :func:`fused_step`.

Custom ops take tensors, numbers and strings, not a :class:`~superpositional.Circuit`, so
circuits are passed by a key that :func:`register` gives them (the optimizer registers its
groups' circuits when they are added or loaded).
"""

import itertools
import weakref
from typing import Optional

import torch

from ..backends import kernel
from ..backends.base import StepConfig, StepTensors
from ..circuit import Circuit

__all__ = ["circuit_key", "compiled_step", "fused_step", "register"]

_CIRCUITS: "weakref.WeakValueDictionary[str, Circuit]" = weakref.WeakValueDictionary()
_NEXT = itertools.count()


def register(circuit: Circuit) -> str:
    """Give ``circuit`` a key that :func:`fused_step` resolves (idempotent)."""
    key = circuit.__dict__.get("_op_key")
    if key is None or _CIRCUITS.get(key) is not circuit:  # new, or a copy that carried its original's key
        key = f"circuit-{next(_NEXT)}"
        circuit.__dict__["_op_key"] = key
        _CIRCUITS[key] = circuit
    return key


def circuit_key(circuit: Circuit) -> str:
    """The key :func:`register` gave ``circuit`` (a plain attribute read, which Dynamo traces)."""
    return circuit._op_key


@torch.library.custom_op(
    "superpositional::fused_step",
    mutates_args=("params", "exp_avgs", "exp_avg_sqs", "steps", "max_exp_avg_sqs"),
)
def fused_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    steps: list[torch.Tensor],
    max_exp_avg_sqs: list[torch.Tensor],
    rounding_streams: list[int],
    lr: float,
    lr_tensor: Optional[torch.Tensor],  # noqa: UP045 - the schema inference reads typing.Optional
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    quantum_weight: float,
    maximize: bool,
    amsgrad: bool,
    stochastic_rounding: bool,
    rounding_seed: int,
    preconditioned: bool,
    circuit: str,
    coverage: str,
) -> None:
    """``SuperpositionalAdamW``'s fused step on the kernel of the parameters' device (see adamw.py)."""
    if not params:
        return
    kernel.fused_step(
        StepTensors(params, grads, exp_avgs, exp_avg_sqs, steps, max_exp_avg_sqs, rounding_streams),
        StepConfig(
            lr=lr_tensor if lr_tensor is not None else lr,
            beta1=beta1,
            beta2=beta2,
            eps=eps,
            weight_decay=weight_decay,
            quantum_weight=quantum_weight,
            maximize=maximize,
            circuit=_CIRCUITS[circuit],
            coverage=coverage,
            amsgrad=amsgrad,
            rounding_seed=rounding_seed if stochastic_rounding else None,
            perturbation="preconditioned" if preconditioned else "paper",
        ),
    )


def compiled_step(tensors: StepTensors, config: StepConfig) -> None:
    """The fused step as one node of a ``torch.compile`` graph (a tensor ``lr`` stays a tensor)."""
    lr_tensor = config.lr if isinstance(config.lr, torch.Tensor) else None
    fused_step(
        *tensors,
        0.0 if lr_tensor is not None else float(config.lr),
        lr_tensor,
        *config.hyperparameters(),
        circuit_key(config.circuit),
        config.coverage,
    )


@fused_step.register_fake
def _fused_step_fake(*args, **kwargs) -> None:
    """The step changes its arguments in place and returns nothing: nothing to fake."""
    return None
