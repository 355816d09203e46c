"""The options of a param group, checked: a clear error naming the first bad one.

The optimizer checks a group when it is created, added or loaded from a checkpoint, and again at
every step (a user may assign ``group["lr"] = ...`` at any time), before any group changes.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .. import backends
from ..backends.base import StepConfig
from ..backends.qiskit.target import QiskitTarget
from ..circuit import Circuit
from ..geometry import COVERAGES

__all__ = ["PARAM_DTYPES", "STEP_BACKENDS", "check_group", "config_of"]

PARAM_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
STEP_BACKENDS = ("auto", *backends.NAMES)


def config_of(group: dict[str, Any]) -> StepConfig:
    """The :class:`StepConfig` of a checked group."""
    beta1, beta2 = group["betas"]
    return StepConfig(
        lr=group["lr"],
        beta1=float(beta1),
        beta2=float(beta2),
        eps=float(group["eps"]),
        weight_decay=float(group["weight_decay"]),
        quantum_weight=float(group["quantum_weight"]),
        maximize=bool(group["maximize"]),
        circuit=group["circuit"],
        coverage=group["coverage"],
    )


def check_group(group: dict[str, Any]) -> None:
    """Raise a clear error for any invalid option of a param group."""
    lr = group["lr"]
    if isinstance(lr, torch.Tensor) and lr.numel() != 1:
        raise ValueError("a tensor lr must have exactly one element")
    _finite_number(group, "lr", 0.0)
    _finite_number(group, "eps", 0.0)
    _finite_number(group, "weight_decay", 0.0)
    _finite_number(group, "quantum_weight")
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        beta = _real(beta, f"betas[{i}]")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"betas[{i}] must be in [0, 1), got {beta}")
    if not isinstance(group["circuit"], Circuit):
        raise TypeError(f"circuit must be a superpositional.Circuit, got {type(group['circuit']).__name__}")
    if not isinstance(group["coverage"], str) or group["coverage"] not in COVERAGES:
        raise ValueError(f"coverage must be 'paper' or 'all', got {group['coverage']!r}")
    backend = group["backend"]
    if not isinstance(backend, QiskitTarget) and (
        not isinstance(backend, str) or backend not in STEP_BACKENDS
    ):
        raise ValueError(
            f"backend must be one of {list(STEP_BACKENDS)} or a superpositional.QiskitTarget, got {backend!r}"
        )
    try:
        amsgrad = bool(group.get("amsgrad", False))
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"amsgrad must be a bool, got {type(group['amsgrad']).__name__}") from None
    if amsgrad:
        raise ValueError("amsgrad=True is not supported by SuperpositionalAdamW")
    if not isinstance(group["maximize"], bool):
        raise TypeError(f"maximize must be a bool, got {type(group['maximize']).__name__}")


def _real(value: Any, key: str) -> float:
    if isinstance(value, (str, bytes)):  # float() would parse "1e-3"; torch.optim.AdamW refuses it
        raise TypeError(f"{key} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{key} must be a real number, got {type(value).__name__}") from None


def _finite_number(group: dict[str, Any], key: str, minimum: float | None = None) -> None:
    value = group[key]
    if isinstance(value, torch.Tensor) and (value.device.type != "cpu" or torch.compiler.is_compiling()):
        # Reading it would synchronise with the device (breaking graph capture), or be data-dependent
        # under torch.compile; it was checked when the group was added.
        return
    number = _real(value, key)
    if not math.isfinite(number):
        raise ValueError(f"{key} must be finite, got {number}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{key} must be >= {minimum}, got {number}")
