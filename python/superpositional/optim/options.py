"""The options of a param group: their defaults, their checks, and the step's view of them.

A param group holds every key of :class:`torch.optim.AdamW`'s groups (``lr`` ... ``fused``,
``decoupled_weight_decay``), so that checkpoint tools written for AdamW find what they expect, and
those of this optimizer's own options (:data:`OWN_OPTIONS`) that were set for it; an own option a
group does not hold follows the optimizer's ``defaults``. (Tools such as
``torch.distributed.checkpoint``'s flattened state dicts read every key of a group from the
checkpoint: a group of AdamW keys only loads an AdamW checkpoint.)

The optimizer checks a group when it is created, added or loaded from a checkpoint, and again at
every step (a user may assign ``group["lr"] = ...`` at any time), before any group changes. An option
that :class:`torch.optim.AdamW` refuses is refused with the same exception type and a message that
starts with torch's text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from .. import backends
from ..backends.base import StepConfig
from ..backends.qiskit.target import QiskitTarget
from ..circuit import Circuit
from ..geometry import COVERAGES

__all__ = [
    "ADAMW_DEFAULTS",
    "OWN_OPTIONS",
    "PARAM_DTYPES",
    "PERTURBATIONS",
    "STATE_DTYPES",
    "STEP_BACKENDS",
    "check_group",
    "config_of",
    "options_of",
    "rounding_seed",
    "state_dtype_name",
]

PARAM_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
COMPLEX_DTYPES = (torch.complex64, torch.complex128)
STEP_BACKENDS = ("auto", *backends.NAMES)

# torch.optim.AdamW's group keys and defaults, in its order.
ADAMW_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 1e-2,
    "amsgrad": False,
    "maximize": False,
    "foreach": None,
    "capturable": False,
    "differentiable": False,
    "fused": None,
    "decoupled_weight_decay": True,
}

# This optimizer's own options, which AdamW's groups do not have.
OWN_OPTIONS = (
    "quantum_weight",
    "circuit",
    "coverage",
    "backend",
    "state_dtype",
    "stochastic_rounding",
    "perturbation",
)

# perturbation: where the circuit term enters the update (docs/design.md, *The mathematics*):
# "paper", lr * lambda * e * g beside the Adam update, as the paper writes it; "preconditioned",
# lambda * e * g added to the bias-corrected first moment before Adam's division.
PERTURBATIONS = ("paper", "preconditioned")

# state_dtype: "float32" (torch.float32 is accepted for it) keeps the states of 16-bit parameters in
# float32; "param" keeps every state in its parameter's dtype, as torch.optim.AdamW does.
STATE_DTYPES = ("float32", "param")
ROUNDING_SEED_LIMIT = 2**32  # seeds are the kernels' uint32


def state_dtype_name(value: Any) -> str:
    """The ``state_dtype`` option as its canonical name (:data:`STATE_DTYPES`)."""
    return "float32" if value is torch.float32 else value


def rounding_seed(value: bool | int) -> int | None:
    """The seed of a ``stochastic_rounding`` option: ``None`` for off, 0 for ``True``, else the int."""
    if value is False:
        return None
    return 0 if value is True else int(value)


def options_of(group: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of ``group``: its own keys over the optimizer's ``defaults``."""
    return {**defaults, **group}


def config_of(options: Mapping[str, Any]) -> StepConfig:
    """The :class:`StepConfig` of a checked group's :func:`options_of`."""
    beta1, beta2 = options["betas"]
    return StepConfig(
        lr=options["lr"],
        beta1=float(beta1),
        beta2=float(beta2),
        eps=float(options["eps"]),
        weight_decay=float(options["weight_decay"]),
        quantum_weight=float(options["quantum_weight"]),
        maximize=bool(options["maximize"]),
        circuit=options["circuit"],
        coverage=options["coverage"],
        amsgrad=bool(options["amsgrad"]),
        rounding_seed=rounding_seed(options["stochastic_rounding"]),
        state_dtype=state_dtype_name(options["state_dtype"]),
        perturbation=options["perturbation"],
    )


def check_group(options: Mapping[str, Any], *, constructor: bool = False) -> None:
    """Raise a clear error for any invalid option of a group's :func:`options_of`, in the order
    :class:`torch.optim.AdamW` checks its arguments; with ``constructor``, also the checks that AdamW
    makes of its constructor's arguments only (the types of ``betas``; ``fused`` with ``foreach``
    or ``differentiable``)."""
    _check_adamw_options(options, constructor)
    _finite(options, "quantum_weight", "quantum_weight")
    if not isinstance(options["circuit"], Circuit):
        raise TypeError(f"circuit must be a superpositional.Circuit, got {type(options['circuit']).__name__}")
    if not isinstance(options["coverage"], str) or options["coverage"] not in COVERAGES:
        raise ValueError(f"coverage must be 'paper' or 'all', got {options['coverage']!r}")
    if not isinstance(options["perturbation"], str) or options["perturbation"] not in PERTURBATIONS:
        raise ValueError(
            "perturbation must be 'paper' (lr * lambda * e * g beside the Adam update) or 'preconditioned' "
            f"(lambda * e * g added to m_hat before Adam's division), got {options['perturbation']!r}"
        )
    backend = options["backend"]
    if not isinstance(backend, QiskitTarget) and (
        not isinstance(backend, str) or backend not in STEP_BACKENDS
    ):
        raise ValueError(
            f"backend must be one of {list(STEP_BACKENDS)} or a superpositional.QiskitTarget, got {backend!r}"
        )
    if state_dtype_name(options["state_dtype"]) not in STATE_DTYPES:
        raise ValueError(
            "state_dtype must be torch.float32 (float32 states for 16-bit parameters) or 'param' (each "
            f"state in its parameter's dtype, as torch.optim.AdamW keeps it), got {options['state_dtype']!r}"
        )
    rounding = options["stochastic_rounding"]
    if not isinstance(rounding, (bool, int)):
        raise TypeError("stochastic_rounding must be a bool or an int seed, got " + type(rounding).__name__)
    if not isinstance(rounding, bool) and not 0 <= rounding < ROUNDING_SEED_LIMIT:
        raise ValueError(f"stochastic_rounding's seed must be in [0, 2**32), got {rounding}")


def _check_adamw_options(options: Mapping[str, Any], constructor: bool) -> None:
    lr = options["lr"]
    if isinstance(lr, torch.Tensor):
        if options["foreach"] and not options["capturable"]:
            raise ValueError("lr as a Tensor is not supported for capturable=False and foreach=True")
        if lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
    _bounded(options, "lr", "Invalid learning rate")
    _bounded(options, "eps", "Invalid epsilon value")
    betas = options["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        if isinstance(beta, torch.Tensor) and beta.numel() != 1:
            raise ValueError(f"Tensor betas[{i}] must be 1-element")
        value = _real(beta, f"betas[{i}]")
        if not 0.0 <= value < 1.0:  # NaN fails too
            raise ValueError(f"Invalid beta parameter at index {i}: {beta} (betas[{i}] must be in [0, 1))")
    _bounded(options, "weight_decay", "Invalid weight_decay value")
    if constructor and not (
        all(isinstance(b, float) for b in betas) or all(isinstance(b, torch.Tensor) for b in betas)
    ):
        raise ValueError(f"betas must be either both floats or both Tensors, got {betas!r}")
    for i, beta in enumerate(betas):
        if isinstance(beta, torch.Tensor) and options["foreach"] and not options["capturable"]:
            raise ValueError(f"betas[{i}] as a Tensor is not supported for capturable=False and foreach=True")
    for key in ("amsgrad", "maximize", "capturable", "differentiable"):
        if not isinstance(options[key], bool):
            raise TypeError(f"{key} must be a bool, got {type(options[key]).__name__}")
    for key in ("foreach", "fused"):
        if options[key] is not None and not isinstance(options[key], bool):
            raise TypeError(f"{key} must be a bool or None, got {type(options[key]).__name__}")
    if constructor and options["fused"]:
        if options["differentiable"]:
            raise RuntimeError("`fused` does not support `differentiable`")
        if options["foreach"]:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    if options["differentiable"]:
        raise ValueError(
            "differentiable=True is not supported by SuperpositionalAdamW: its step runs compiled "
            "kernels outside autograd, so a step cannot be differentiated"
        )
    if options["decoupled_weight_decay"] is not True:
        raise ValueError(
            "decoupled_weight_decay must be True: SuperpositionalAdamW decays weights as AdamW does, "
            f"got {options['decoupled_weight_decay']!r}"
        )


def _real(value: Any, key: str) -> float:
    if isinstance(value, (str, bytes)):  # float() would parse "1e-3"; torch.optim.AdamW refuses it
        raise TypeError(f"{key} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{key} must be a real number, got {type(value).__name__}") from None


def _readable(value: Any) -> bool:
    """False for a tensor whose value must not be read here: on a device (reading would synchronise,
    breaking graph capture) or under ``torch.compile`` (data-dependent); it was checked on the host
    when its group was added."""
    return not (
        isinstance(value, torch.Tensor) and (value.device.type != "cpu" or torch.compiler.is_compiling())
    )


def _bounded(options: Mapping[str, Any], key: str, torch_text: str) -> None:
    """A finite number >= 0; torch's text first, as ``torch.optim.AdamW`` words it."""
    value = options[key]
    if not _readable(value):
        return
    number = _real(value, key)
    if math.isnan(number) or number < 0.0:
        raise ValueError(f"{torch_text}: {value} ({key} must be a finite number >= 0)")
    if not math.isfinite(number):
        raise ValueError(f"{torch_text}: {value} ({key} must be finite)")


def _finite(options: Mapping[str, Any], key: str, what: str) -> None:
    value = options[key]
    if not _readable(value):
        return
    if not math.isfinite(_real(value, key)):
        raise ValueError(f"{what} must be finite, got {value}")
