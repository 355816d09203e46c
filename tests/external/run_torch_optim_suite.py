"""Run PyTorch's generic optimizer test suite against ``SuperpositionalAdamW``.

PyTorch tests every optimizer in ``torch.optim`` with one generic suite: ``test/test_optim.py`` of
the PyTorch repository (class ``TestOptimRenewed``), whose tests are generated from the list
``torch.testing._internal.common_optimizers.optim_db`` by the ``@optims(optim_db)`` decorator.
This script adds an entry for ``superpositional.SuperpositionalAdamW`` to that list, modelled on
the ``torch.optim.AdamW`` entry, imports the suite and runs the tests generated for our optimizer
under pytest.

PyTorch's test file is not part of this repository: take it from a PyTorch checkout that matches
the installed torch and give its path. It imports three sibling modules (``optim.test_lrscheduler``,
``optim.test_optim``, ``optim.test_swa_utils``) only to re-export other test classes; delete those
imports from your copy, or put the PyTorch ``test/`` folder on ``PYTHONPATH``.

Usage::

    python tests/external/run_torch_optim_suite.py PATH/TO/test_optim.py [pytest args ...]

The test ids are restricted with ``-k SuperpositionalAdamW``; further pytest arguments (``-q``,
``-x``, ``-p no:cacheprovider`` ...) are passed through. A ``-k`` given there replaces ours (pytest
keeps the last), so include the class in it: ``-k "SuperpositionalAdamW and cuda"``.
``instantiate_device_type_tests`` in the suite makes a CPU variant of every
test and, where CUDA is available, a CUDA one.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

# Decorators (``DecorateInfo(unittest.skip(...), "TestOptimRenewed", "test_...")``) for tests of
# the suite that cannot apply to SuperpositionalAdamW. Only a test that exercises the foreach
# implementation or differentiable=True may go here: SuperpositionalAdamW has no separate foreach
# (multi-tensor) implementation (foreach is accepted for drop-in compatibility and runs the one
# implementation) and refuses differentiable=True by design. With ``supported_impls=("fused",)``
# the suite already leaves out every such test (test_foreach_matches_forloop,
# test_peak_memory_foreach, test_defaults_changed_to_foreach, ...; test_mixed_device_dtype returns
# at once for impl="foreach") and drops differentiable=True from the inputs of the others, so the
# list is empty.
_SKIPS: tuple = ()


def _find_adamw_info(optim_db: list) -> object:
    import torch

    for info in optim_db:
        if info.optim_cls is torch.optim.AdamW:
            return info
    raise LookupError("optim_db of the installed torch has no entry for torch.optim.AdamW")


def register_superpositional_adamw() -> object:
    """Append an OptimizerInfo for SuperpositionalAdamW to ``optim_db`` and return it.

    It is a copy of the AdamW entry (the same inputs, error inputs, schedulers, fused devices,
    tolerance overrides ...), whatever fields the installed torch's OptimizerInfo has, with our
    class, the one implementation we have and ``_SKIPS``.
    """
    from torch.testing._internal import common_optimizers

    from superpositional import SuperpositionalAdamW

    optim_db = common_optimizers.optim_db
    if any(info.optim_cls is SuperpositionalAdamW for info in optim_db):
        raise RuntimeError("optim_db already has an entry for SuperpositionalAdamW")
    adamw = _find_adamw_info(optim_db)

    info = copy.copy(adamw)
    info.optim_cls = SuperpositionalAdamW
    # fused=True/False both run our single implementation, which the suite's fused tests compare
    # with itself; there is no foreach implementation, and differentiable=True is refused.
    info.supported_impls = ("fused",)
    info.decorators = (*adamw.decorators, *_SKIPS)
    optim_db.append(info)
    return info


def _import_suite(path: Path) -> None:
    """Import the suite from ``path`` under the name pytest gives it (its ``rootdir``-less
    default, the file's stem, with its folder on ``sys.path``), so that pytest collects this very
    module, whose ``@optims(optim_db)`` decorators ran after our entry was appended."""
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    # instantiate_device_type_tests replaces the generic class by TestOptimRenewedCPU etc.
    if not any(name.startswith("TestOptimRenewed") for name in vars(module)):
        raise ImportError(f"{path} has no TestOptimRenewed: not PyTorch's test/test_optim.py")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    suite = Path(argv[0]).resolve()
    if not suite.is_file():
        print(f"no such file: {suite}", file=sys.stderr)
        return 2
    pytest_args = argv[1:]

    # torch.testing._internal.common_utils parses sys.argv when it is imported (and argparse takes
    # abbreviations of its options): let it see none of ours.
    sys.argv = [sys.argv[0]]

    import pytest

    register_superpositional_adamw()
    _import_suite(suite)
    return int(pytest.main([str(suite), "-k", "SuperpositionalAdamW", *pytest_args]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
