"""One check that a failed call changed nothing, for every test that needs it.

A :class:`Snapshot` of an optimizer holds everything a refused call must leave as it was: the param
groups' parameter lists and options, every parameter's values and gradient, and the whole state
(step counters included). Tensors are compared bit for bit with NaN equal to NaN (garbage inputs may
hold NaN, and a NaN that stays NaN is unchanged), numbers and containers likewise.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

__all__ = ["Snapshot", "same"]


def same(a, b) -> bool:
    """Bit-for-bit equality for tensors, NaN-aware equality for numbers, recursive for containers."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and (a.is_sparse or b.is_sparse):
        return a.layout == b.layout and same(a.to_dense(), b.to_dense())
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.device == b.device
            and (a.device.type == "meta" or torch.equal(a.nan_to_num(), b.nan_to_num()))
            and (a.device.type == "meta" or not a.is_floating_point() or torch.equal(a.isnan(), b.isnan()))
        )
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        nan_aware = isinstance(a, np.ndarray) and a.dtype.kind in "fc"
        return type(a) is type(b) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=nan_aware)
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # garbage whose == is not a truth value: only the same object is unchanged
        return False


class Snapshot:
    """Everything a failed call must leave as it was: values, gradients, state, options."""

    def __init__(self, opt: torch.optim.Optimizer) -> None:
        self.opt = opt
        self.params = [p for g in opt.param_groups for p in g["params"]]
        self.values = [p.detach().clone() for p in self.params]
        self.grads = [None if p.grad is None else p.grad.clone() for p in self.params]
        self.state = {
            p: {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
            for p, s in opt.state.items()
        }
        # Each option itself (an object that was never replaced is unchanged) and a copy of it (a list
        # or tensor changed in place is not).
        self.options = [
            {k: (v, copy.copy(v)) for k, v in g.items() if k != "params"} for g in opt.param_groups
        ]
        self.groups = [list(g["params"]) for g in opt.param_groups]

    def assert_unchanged(self, grads: bool = True) -> None:
        opt = self.opt
        assert [list(g["params"]) for g in opt.param_groups] == self.groups
        for i, (p, value, grad) in enumerate(zip(self.params, self.values, self.grads)):
            assert same(p.detach(), value), f"parameter {i} changed"
            assert (p.grad is None) == (grad is None), f"gradient {i} appeared or vanished"
            assert not grads or grad is None or same(p.grad, grad), f"gradient {i} changed"
        assert set(opt.state) == set(self.state), "state was created or dropped"
        for p, entries in self.state.items():
            assert opt.state[p].keys() == entries.keys()
            for name, value in entries.items():
                assert same(opt.state[p][name], value), f"state {name} changed"
        for i, (group, options) in enumerate(zip(opt.param_groups, self.options)):
            now = {k: v for k, v in group.items() if k != "params"}
            assert now.keys() == options.keys(), f"options of group {i} were added or dropped"
            for k, value in now.items():
                original, copied = options[k]
                contents = isinstance(copied, (list, tuple, dict, torch.Tensor, np.ndarray))
                assert (value is original or same(value, original)) and (
                    not contents or same(value, copied)
                ), f"option {k!r} of group {i} changed"
