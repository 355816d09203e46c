"""``python -m superpositional info``: what this installation can do."""

from __future__ import annotations

import importlib.metadata
import os
import platform

import torch

from superpositional import __version__
from superpositional._extension import extension
from superpositional.backends import available_backends
from superpositional.backends.qiskit import describe_from_env


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect() -> dict:
    """The build and environment as a dict (also recorded by the benchmarks)."""
    ext = extension()
    info = {
        "superpositional": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "qiskit": _version("qiskit"),
        "qiskit-aer": _version("qiskit-aer"),
        "backends": available_backends(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "extension": ext is not None,
    }
    if ext is not None:
        info.update(
            cpu_isa=ext.cpu_isa(),
            cpu_isas_compiled=ext.compiled_cpu_isas(),
            cpu_isas_supported=ext.supported_cpu_isas(),
            cuda_compiled=bool(ext.cuda_compiled),
            compiler=ext.compiler,
            max_qubits=ext.max_qubits,
        )
        if ext.cuda_compiled:
            info["cuda_architectures"] = getattr(ext, "cuda_architectures", "unknown")
    info["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main() -> int:
    for key, value in collect().items():
        print(f"{key:>20}: {value}")
    # The Qiskit target of SUPERPOSITIONAL_QISKIT_BACKEND: resolving it may ask IBM Quantum (10 s at most).
    target = describe_from_env()
    print(f"{'qiskit_target':>20}: {target.pop('target')}")
    for key, value in target.items():
        print(f"{key:>20}: {value}")
    return 0
