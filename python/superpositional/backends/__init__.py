"""Simulation backends and how ``"auto"`` chooses among them.

``"cpu"``: the C++ kernel. ``"cuda"``: the CUDA kernel. ``"torch"``: the
pure-PyTorch reference (any device; the fallback when the extension is
missing). ``"aer"``: Qiskit Aer, exact.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from .._extension import extension
from . import aer
from .kernel import simulate_cpu, simulate_cuda
from .reference import simulate as simulate_torch

SimulateFn = Callable[..., tuple]

_SIMULATORS: dict[str, SimulateFn] = {
    "cpu": simulate_cpu,
    "cuda": simulate_cuda,
    "torch": simulate_torch,
    "aer": aer.simulate_aer,
}


def is_available(backend: str) -> bool:
    """Whether the backend named ``backend`` is usable here.

    Probes only what that backend needs, so asking about a kernel never imports Qiskit: the
    optimizer asks on every step, also inside ``torch.compile``, where Dynamo cannot trace an import.
    """
    if backend == "torch":
        return True
    if backend == "aer":
        return aer.available()
    ext = extension()
    if backend == "cpu":
        return ext is not None
    if backend == "cuda":
        return ext is not None and bool(ext.cuda_compiled) and torch.cuda.is_available()
    return False


def available_backends() -> list[str]:
    """Names of the backends usable here, e.g. ``["cpu", "cuda", "torch", "aer"]``."""
    return [name for name in _SIMULATORS if is_available(name)]


def resolve(backend: str, device: torch.device) -> str:
    """The backend name to run on ``device``; ``"auto"`` picks the kernel for the device."""
    if not isinstance(backend, str):
        raise TypeError(
            f"backend is a name such as 'auto', 'cpu', 'torch' or 'aer', got {type(backend).__name__}"
        )
    if backend == "auto":
        kernel = "cpu" if device.type == "cpu" else device.type
        if is_available(kernel):
            return kernel
        warnings.warn(
            f"no compiled kernel for {device.type} tensors here; using the (slow) torch backend",
            RuntimeWarning,
            stacklevel=3,
        )
        return "torch"
    if backend not in _SIMULATORS:
        raise ValueError(f"unknown backend {backend!r}; available here: {available_backends()}")
    if not is_available(backend):
        raise RuntimeError(f"backend {backend!r} is not available here; available: {available_backends()}")
    if backend in ("cpu", "cuda") and device.type != backend:
        raise ValueError(f"backend {backend!r} runs on {backend.upper()} tensors, got tensors on {device}")
    return backend


def simulator(name: str) -> SimulateFn:
    return _SIMULATORS[name]
