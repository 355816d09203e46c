"""superpositional: Superpositional Gradient Descent for PyTorch.

Batched quantum-circuit simulation in C++ (and CUDA), exposed to PyTorch and
validated against Qiskit Aer. See the README for the mathematics.
"""

from __future__ import annotations

from . import circuits, nn
from .backends import available_backends
from .backends.qiskit_target import QiskitTarget
from .circuit import Circuit, Gate, Input, grad, param
from .optimizer import SuperpositionalAdamW
from .simulate import simulate

__version__ = "0.1.0"

__all__ = [
    "Circuit",
    "Gate",
    "Input",
    "QiskitTarget",
    "SuperpositionalAdamW",
    "__version__",
    "available_backends",
    "circuits",
    "grad",
    "nn",
    "param",
    "simulate",
]
