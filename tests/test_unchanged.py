"""The "nothing changed" check of tests/unchanged.py sees every kind of change, and only changes."""

from __future__ import annotations

import pytest
import torch

import superpositional as sp

from unchanged import Snapshot


def _stepped() -> tuple[sp.SuperpositionalAdamW, torch.nn.Parameter]:
    p = torch.nn.Parameter(torch.tensor([1.0, float("nan"), 3.0]))
    opt = sp.SuperpositionalAdamW([p], quantum_weight=0.0)
    opt.param_groups[0]["betas"] = [0.9, 0.99]  # a list a user set, which a change may mutate in place
    p.grad = torch.ones(3)
    opt.step()
    return opt, p


def test_nan_that_stays_nan_is_unchanged():
    opt, _ = _stepped()
    Snapshot(opt).assert_unchanged()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda opt, p: p.data.add_(1), "parameter 0 changed"),
        (lambda opt, p: p.grad.mul_(2), "gradient 0 changed"),
        (lambda opt, p: opt.state[p]["step"].add_(1), "state step changed"),
        (lambda opt, p: opt.state.clear(), "state was created or dropped"),
        (lambda opt, p: opt.param_groups[0].update(lr=0.5), "option 'lr' of group 0 changed"),
        (lambda opt, p: opt.param_groups[0]["betas"].append(0.5), "option 'betas' of group 0 changed"),
    ],
)
def test_every_change_is_seen(change, message):
    opt, p = _stepped()
    snapshot = Snapshot(opt)
    change(opt, p)
    with pytest.raises(AssertionError, match=message):
        snapshot.assert_unchanged()
