"""Loads the compiled core (``superpositional._C``) once, remembering why it failed if it did."""

from __future__ import annotations

from types import ModuleType

_module: ModuleType | None
_import_error: BaseException | None

try:
    from . import _C as _module  # type: ignore[attr-defined]

    _import_error = None
except ImportError as error:  # pragma: no cover - exercised only by broken installs
    _module = None
    _import_error = error


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
