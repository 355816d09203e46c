"""Loads the compiled core (``superpositional._C``) once, remembering why it failed if it did."""

from __future__ import annotations

import os
import warnings
from types import ModuleType

CPU_ISA_VARIABLE = "SUPERPOSITIONAL_CPU_ISA"

_module: ModuleType | None
_import_error: BaseException | None

try:
    from . import _C as _module  # type: ignore[attr-defined]

    _import_error = None
except ImportError as error:  # pragma: no cover - exercised only by broken installs
    _module = None
    _import_error = error


def _apply_cpu_isa_override(module: ModuleType) -> None:
    """Run-time dispatch picks the widest kernels the CPU supports; ``SUPERPOSITIONAL_CPU_ISA``
    (``generic``, ``avx2`` or ``avx512``) picks narrower ones, e.g. to compare them or to reproduce
    another machine's rounding. A name this build or CPU cannot run is ignored with a warning:
    the library still imports, and ``python -m superpositional info`` shows what runs."""
    name = os.environ.get(CPU_ISA_VARIABLE, "").strip()
    if not name:
        return
    try:
        module.set_cpu_isa(name)
    except ValueError as error:
        warnings.warn(
            f"{CPU_ISA_VARIABLE}={name!r} ignored: {error}; using the {module.cpu_isa()!r} kernels",
            RuntimeWarning,
            stacklevel=3,
        )


def _single_threaded_after_fork() -> None:
    """In a child forked after our kernels opened an OpenMP team: libgomp's thread pool did not
    survive the fork (its threads are gone, its state says they exist), so the first parallel region
    in the child, ours or torch's (the two share one libgomp), would wait for them forever. One thread
    needs no pool: the child runs single-threaded, as torch's DataLoader workers do."""
    if _module is not None and _module.parallel_team_opened():
        import torch

        torch.set_num_threads(1)  # our kernels take their team size from torch's


if _module is not None:
    _apply_cpu_isa_override(_module)
    os.register_at_fork(after_in_child=_single_threaded_after_fork)


def extension() -> ModuleType | None:
    """The compiled module, or None when it could not be imported."""
    return _module


def require_extension() -> ModuleType:
    """The compiled module; raises a clear error naming the import failure."""
    if _module is None:
        raise RuntimeError(
            "superpositional's compiled extension is not available "
            f"({_import_error}); reinstall with `pip install .` or use backend='torch'"
        )
    return _module
