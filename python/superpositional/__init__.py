"""superpositional: Superpositional Gradient Descent for PyTorch.

Batched quantum-circuit simulation in C++ (and CUDA), exposed to PyTorch and
validated against Qiskit Aer. The mathematics, the layering and the decisions
are in docs/design.md.

The public names load on first use (PEP 562): ``import superpositional`` itself imports neither
torch nor the extension, so that ``python -m superpositional ... --help`` answers at once instead
of after the seconds torch takes to import. ``sp.SuperpositionalAdamW``, ``from superpositional
import simulate``, ``sp.backends`` and every other use work as with eager imports.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it ("" for a submodule of that name).
_EXPORTS = {
    "Circuit": "circuit",
    "Gate": "circuit",
    "Input": "circuit",
    "grad": "circuit",
    "param": "circuit",
    "circuits": "",
    "nn": "",
    "available_backends": "backends",
    "QiskitTarget": "backends.qiskit",
    "QiskitTargetWarning": "backends.qiskit",
    "SuperpositionalAdamW": "optim",
    "simulate": "simulate",
}

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

if TYPE_CHECKING:
    from . import circuits, nn
    from .backends import available_backends
    from .backends.qiskit import QiskitTarget, QiskitTargetWarning
    from .circuit import Circuit, Gate, Input, grad, param
    from .optim import SuperpositionalAdamW
    from .simulate import simulate


def __getattr__(name: str) -> Any:
    """A public name, or a submodule (``sp.backends``), imported on first use and kept."""
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name] or name}", __name__)
        value = getattr(module, name) if _EXPORTS[name] else module
    elif not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


class _Package(types.ModuleType):
    """This package's module type: importing the submodule ``superpositional.simulate`` binds its
    name on the package, which would hide the public function of that name; the function stays."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "simulate" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
