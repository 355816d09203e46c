"""superpositional: Superpositional Gradient Descent for PyTorch.

Batched quantum-circuit simulation in C++ (and CUDA), exposed to PyTorch and
validated against Qiskit Aer. The mathematics, the layering and the decisions
are in docs/design.md.
"""

from __future__ import annotations

from . import circuits, nn
from .backends import available_backends
from .backends.qiskit import QiskitTarget, QiskitTargetWarning
from .circuit import Circuit, Gate, Input, grad, param
from .optim import SuperpositionalAdamW
from .simulate import simulate

__version__ = "0.1.0"

__all__ = [
    "Circuit",
    "Gate",
    "Input",
    "QiskitTarget",
    "QiskitTargetWarning",
    "SuperpositionalAdamW",
    "__version__",
    "available_backends",
    "circuits",
    "grad",
    "nn",
    "param",
    "simulate",
]
