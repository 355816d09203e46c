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


if _module is not None:
    _apply_cpu_isa_override(_module)


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
