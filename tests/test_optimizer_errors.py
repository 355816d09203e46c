"""Bad input to SuperpositionalAdamW: a clear error naming the problem, and nothing changed
(docs/design.md, *Reliability*)."""

from __future__ import annotations

import copy

import pytest
import torch

import superpositional as sp

from unchanged import Snapshot


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(lr=float("nan")), ValueError, "^Invalid learning rate: nan"),
        (dict(lr=float("inf")), ValueError, r"^Invalid learning rate: inf \(lr must be finite\)"),
        (dict(lr=-1e-3), ValueError, "^Invalid learning rate: -0.001"),
        (dict(lr=torch.tensor([1e-3, 2e-3])), ValueError, "^Tensor lr must be 1-element"),
        (dict(eps=float("inf")), ValueError, r"^Invalid epsilon value: inf \(eps must be finite\)"),
        (dict(weight_decay=float("nan")), ValueError, "^Invalid weight_decay value: nan"),
        (dict(quantum_weight=float("inf")), ValueError, "quantum_weight must be finite"),
        (dict(quantum_weight="big"), TypeError, "quantum_weight must be a real number"),
        (dict(betas=(0.9, 1.0)), ValueError, "^Invalid beta parameter at index 1: 1.0"),
        (dict(betas=(float("nan"), 0.99)), ValueError, "^Invalid beta parameter at index 0: nan"),
        (dict(betas=0.9), ValueError, "pair"),
        (dict(coverage="some"), ValueError, "coverage must be 'paper' or 'all'"),
        (dict(circuit="paper"), TypeError, "superpositional.Circuit"),
        (dict(backend="gpu"), ValueError, "backend must be one of"),
        (dict(differentiable=True), ValueError, "differentiable=True is not supported"),
        (dict(amsgrad=1), TypeError, "amsgrad must be a bool"),
        (dict(maximize=1), TypeError, "maximize must be a bool"),
    ],
)
def test_bad_options_are_refused_at_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        sp.SuperpositionalAdamW([torch.nn.Parameter(torch.zeros(3))], **kwargs)


def test_a_bad_param_group_is_refused_and_the_optimizer_keeps_its_groups():
    opt = sp.SuperpositionalAdamW([torch.nn.Parameter(torch.zeros(3))])
    with pytest.raises(ValueError, match="coverage"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "coverage": "none"})
    assert len(opt.param_groups) == 1


def _two_groups(rng_seed=0):
    torch.manual_seed(rng_seed)
    good = torch.nn.Parameter(torch.randn(4, 3))
    bad = torch.nn.Parameter(torch.randn(5))
    opt = sp.SuperpositionalAdamW([{"params": [good]}, {"params": [bad]}], quantum_weight=0.3, coverage="all")
    good.grad = torch.randn(4, 3)
    bad.grad = torch.randn(5)
    opt.step()  # a first step, so that state exists
    good.grad = torch.randn(4, 3)
    return opt, good, bad


def test_sparse_gradient_changes_nothing():
    opt, _, bad = _two_groups()
    bad.grad = torch.randn(5).to_sparse()
    snapshot = Snapshot(opt)
    with pytest.raises(RuntimeError, match="sparse gradients"):
        opt.step()
    snapshot.assert_unchanged()


def test_hyperparameter_made_non_finite_later_changes_nothing():
    opt, _, bad = _two_groups()
    bad.grad = torch.randn(5)
    opt.param_groups[1]["lr"] = float("nan")
    snapshot = Snapshot(opt)
    with pytest.raises(ValueError, match="Invalid learning rate: nan"):
        opt.step()
    snapshot.assert_unchanged()


def test_unsupported_dtype_changes_nothing():
    p = torch.arange(3, dtype=torch.int32)  # torch.optim takes any leaf tensor; the step must refuse it
    opt = sp.SuperpositionalAdamW([p])
    p.grad = torch.ones(3, dtype=torch.int32)
    before = p.detach().clone()
    with pytest.raises(TypeError, match=r"float16, complex64 or complex128, got torch\.int32"):
        opt.step()
    assert torch.equal(p.detach(), before) and not opt.state


def test_mixed_devices_in_one_group_are_refused():
    cpu = torch.nn.Parameter(torch.randn(3))
    meta = torch.nn.Parameter(torch.empty(3, device="meta"))
    opt = sp.SuperpositionalAdamW([cpu, meta])
    cpu.grad = torch.randn(3)
    meta.grad = torch.empty(3, device="meta")
    before = cpu.detach().clone()
    with pytest.raises(RuntimeError, match="share one device"):
        opt.step()
    assert torch.equal(cpu.detach(), before) and not opt.state


def test_cpu_backend_refuses_other_devices():
    meta = torch.nn.Parameter(torch.empty(3, device="meta"))
    opt = sp.SuperpositionalAdamW([meta], backend="cpu")
    meta.grad = torch.empty(3, device="meta")
    with pytest.raises(ValueError, match="backend 'cpu' runs on CPU tensors, got tensors on meta"):
        opt.step()
    assert not opt.state


def test_state_dict_of_the_wrong_shape_is_refused_before_anything_changes():
    opt, _, bad = _two_groups()
    bad.grad = torch.randn(5)
    opt.step()
    state_dict = copy.deepcopy(opt.state_dict())
    state_dict["state"][0]["exp_avg"] = torch.zeros(3, 4)
    snapshot = Snapshot(opt)
    groups_before = copy.deepcopy([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups])
    message = r"exp_avg of parameter 0 has shape \[3, 4\], but the parameter has shape"
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(state_dict)
    snapshot.assert_unchanged()
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == groups_before


def test_state_dict_with_other_groups_is_refused():
    opt, good, bad = _two_groups()
    other = sp.SuperpositionalAdamW([good, bad])
    with pytest.raises(ValueError, match=r"^loaded state dict has a different number of parameter groups"):
        opt.load_state_dict(other.state_dict())
    resized = sp.SuperpositionalAdamW([{"params": [good, bad]}, {"params": []}])
    with pytest.raises(ValueError, match=r"^loaded state dict contains a parameter group that doesn't match"):
        opt.load_state_dict(resized.state_dict())


def test_state_dict_with_bad_options_is_refused():
    opt, _, _ = _two_groups()
    state_dict = copy.deepcopy(opt.state_dict())
    state_dict["param_groups"][0]["coverage"] = "everything"
    with pytest.raises(ValueError, match="coverage"):
        opt.load_state_dict(state_dict)
    assert opt.group_options(0)["coverage"] == "all"
