"""The backend registry: one entry per name, for simulation and for the optimizer's step alike.

``"cpu"``: the C++ kernels (OpenMP, SIMD). ``"cuda"``: the CUDA kernels. ``"torch"``: the
pure-PyTorch reference (any device; the fallback when the extension is missing). ``"aer"``: Qiskit
Aer, exact. ``"auto"`` picks the kernel for the tensors' device. A Qiskit target
(:class:`~.qiskit.QiskitTarget`) is not a name but an object: ``simulate()`` and the optimizer take
it where they take a name.
"""

from __future__ import annotations

import warnings

import torch

from .._extension import extension
from . import aer, kernel, reference
from .base import Backend, Batch, StepConfig, StepTensors

__all__ = [
    "NAMES",
    "Backend",
    "Batch",
    "StepConfig",
    "StepTensors",
    "available_backends",
    "is_available",
    "kernel_for",
    "resolve",
]


_CUDA_SEEN = False


def _cuda_available() -> bool:
    """Whether the CUDA kernels can run here. A yes is kept: every call on CUDA tensors asks, and
    torch's check (a driver query) was nearly a tenth of a small call's host time there; a GPU does not
    go away within a process, while a no may still turn into a yes (a device made visible later)."""
    global _CUDA_SEEN
    if not _CUDA_SEEN:
        ext = extension()
        _CUDA_SEEN = ext is not None and bool(ext.cuda_compiled) and torch.cuda.is_available()
    return _CUDA_SEEN


_REGISTRY: dict[str, Backend] = {
    entry.name: entry
    for entry in (
        Backend(
            "cpu",
            kernel.simulate,
            kernel.fused_step,
            kernel.simulate_backward,
            differentiable=True,
            device="cpu",
            available=lambda: extension() is not None,
        ),
        Backend(
            "cuda",
            kernel.simulate,
            kernel.fused_step,
            kernel.simulate_backward,
            differentiable=True,
            device="cuda",
            available=_cuda_available,
        ),
        # Autograd differentiates the reference's simulation.
        Backend(
            "torch", reference.simulate, None, None, differentiable=True, device=None, available=lambda: True
        ),
        # Asking whether Aer is there imports it at most once: the optimizer asks for its backend on
        # every step, also inside torch.compile, where Dynamo cannot trace an import.
        Backend(
            "aer", aer.simulate_aer, None, None, differentiable=False, device=None, available=aer.available
        ),
    )
}


# Every name the registry holds, usable here or not (what a param group's ``backend`` may name).
NAMES = tuple(_REGISTRY)


def is_available(name: str) -> bool:
    """Whether the backend named ``name`` is usable here."""
    entry = _REGISTRY.get(name)
    return entry is not None and entry.available()


def available_backends() -> list[str]:
    """Names of the backends usable here, e.g. ``["cpu", "cuda", "torch", "aer"]``."""
    return [name for name, entry in _REGISTRY.items() if entry.available()]


def kernel_for(device: torch.device) -> Backend:
    """The compiled kernel for ``device`` if it is usable here, else the torch reference (quietly)."""
    entry = _REGISTRY.get(device.type)
    return (
        entry if entry is not None and entry.device is not None and entry.available() else _REGISTRY["torch"]
    )


def resolve(name: str, device: torch.device, *, stacklevel: int = 2) -> Backend:
    """The backend to run on ``device``: ``"auto"`` picks the kernel for the device (the torch
    reference, with a warning, when none is usable here); a name is checked against the registry,
    what is available and the device."""
    if not isinstance(name, str):
        raise TypeError(
            f"backend is a name such as 'auto', 'cpu', 'torch' or 'aer', got {type(name).__name__}"
        )
    if name == "auto":
        entry = kernel_for(device)
        if entry.device is None:
            warnings.warn(
                f"no compiled kernel for {device.type} tensors here; using the (slow) torch backend",
                RuntimeWarning,
                stacklevel=stacklevel + 1,
            )
        return entry
    if name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; available here: {available_backends()}")
    entry = _REGISTRY[name]
    if not entry.available():
        raise RuntimeError(f"backend {name!r} is not available here; available: {available_backends()}")
    if entry.device is not None and device.type != entry.device:
        raise ValueError(f"backend {name!r} runs on {name.upper()} tensors, got tensors on {device}")
    return entry
