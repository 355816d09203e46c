"""PyTorch's own description of AdamW drives SuperpositionalAdamW.

``torch.testing._internal.common_optimizers`` lists the configurations PyTorch's generic optimizer
tests run AdamW with (``optim_inputs_func_adamw``: AMSGrad, maximize, tensor learning rates and betas,
capturable on CUDA) and the inputs AdamW must refuse (``optim_error_inputs_func_adamw``). Each
configuration, with ``quantum_weight=0``, must step as AdamW does (float32, float64 and complex
parameters), checkpoint through ``torch.save``/``torch.load`` with its defaults, and each error input
must raise AdamW's exception with AdamW's message. On a GPU the CUDA configurations run too.
"""

from __future__ import annotations

import copy
import importlib
import io
import os

import pytest
import torch

import superpositional as sp

try:  # torch's internal test descriptions (they need expecttest, a test extra)
    common = importlib.import_module("torch.testing._internal.common_optimizers")
except ImportError as missing:
    if os.environ.get("SUPERPOSITIONAL_REQUIRE_ALL") == "1":
        raise
    pytest.skip(f"torch's optimizer test descriptions do not import: {missing}", allow_module_level=True)

NEEDS_CUDA = pytest.mark.skipif("cuda" not in sp.available_backends(), reason="no CUDA device or CUDA build")
DEVICES = ["cpu", pytest.param("cuda", marks=NEEDS_CUDA)]


def _inputs(device: str) -> list:
    return common.optim_inputs_func_adamw(device)


def _cases(device_param) -> list:
    device = device_param if isinstance(device_param, str) else device_param.values[0]
    marks = () if isinstance(device_param, str) else device_param.marks
    inputs = _inputs(device)
    return [pytest.param(device, i, id=f"{device}-{o.desc}", marks=marks) for i, o in enumerate(inputs)]


CASES = [case for device in DEVICES for case in _cases(device)]


def _kwargs(device: str, index: int) -> dict:
    """A fresh copy of configuration ``index`` (tensors included: an optimizer may keep them)."""
    kwargs = copy.deepcopy(_inputs(device)[index].kwargs)
    if device == "cuda" and kwargs.get("capturable") and isinstance(kwargs.get("lr"), torch.Tensor):
        kwargs["lr"] = kwargs["lr"].to(device)  # as torch's own tests give a capturable tensor lr
    return kwargs


def _params(device: str, dtype: torch.dtype, seed: int = 0) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(6, 5), (5,), (3, 2, 4), ()]
    return [torch.nn.Parameter(torch.randn(s, generator=generator, dtype=dtype).to(device)) for s in shapes]


def _set_grads(params: list[torch.Tensor], step: int) -> None:
    generator = torch.Generator().manual_seed(1000 + step)
    for p in params:
        scale = 10.0 if step % 3 == 0 else 0.1  # so that AMSGrad's maximum is not the latest value
        p.grad = (scale * torch.randn(p.shape, generator=generator, dtype=p.dtype)).to(p.device)


def _tolerance(dtype: torch.dtype, kwargs: dict) -> dict:
    # AdamW with capturable=True computes its bias corrections from the float32 step counter in
    # float32 even for float64 parameters; the kernels compute them in the parameters' precision.
    if dtype in (torch.float64, torch.complex128) and not kwargs.get("capturable"):
        return dict(atol=1e-12, rtol=1e-11)
    return dict(atol=2e-6, rtol=2e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
@pytest.mark.parametrize(("device", "index"), CASES)
def test_every_adamw_configuration_steps_as_adamw(device, index, dtype):
    a, b = _params(device, dtype), _params(device, dtype)
    adamw = torch.optim.AdamW(a, **_kwargs(device, index))
    ours = sp.SuperpositionalAdamW(b, quantum_weight=0.0, **_kwargs(device, index))
    assert list(ours.param_groups[0]) == list(adamw.param_groups[0])
    for step in range(6):
        _set_grads(a, step)
        _set_grads(b, step)
        adamw.step()
        ours.step()
    tolerance = _tolerance(dtype, _kwargs(device, index))
    for p, q in zip(a, b):
        torch.testing.assert_close(q, p, **tolerance)
        for name, value in adamw.state[p].items():
            mine = ours.state[q][name]
            torch.testing.assert_close(mine, value.to(mine.device, mine.dtype), **tolerance)


@pytest.mark.parametrize(("device", "index"), CASES)
def test_every_configuration_checkpoints_with_torch_load_defaults(device, index):
    a, b = _params(device, torch.float32), _params(device, torch.float32)
    kwargs = dict(quantum_weight=0.5, coverage="all", circuit=sp.circuits.entangled(3))
    opt_a = sp.SuperpositionalAdamW(a, **kwargs, **_kwargs(device, index))
    for step in range(3):
        _set_grads(a, step)
        opt_a.step()
    buffer = io.BytesIO()
    torch.save(opt_a.state_dict(), buffer)
    buffer.seek(0)
    for p, q in zip(a, b):
        q.data.copy_(p.data)
    opt_b = sp.SuperpositionalAdamW(b, **_kwargs(device, 0))  # defaults: the checkpoint's options win
    opt_b.load_state_dict(torch.load(buffer))
    assert opt_b.state_dict()["param_groups"] == opt_a.state_dict()["param_groups"]
    for step in range(3, 6):
        for params, opt in ((a, opt_a), (b, opt_b)):
            _set_grads(params, step)
            opt.step()
    for p, q in zip(a, b):
        assert torch.equal(p, q)


@pytest.mark.parametrize(("device", "index"), CASES)
def test_a_step_without_gradients_changes_nothing(device, index):
    params = _params(device, torch.float32)
    opt = sp.SuperpositionalAdamW(params, **_kwargs(device, index))
    before = [p.detach().clone() for p in params]
    opt.step()
    assert all(torch.equal(p, q) for p, q in zip(params, before)) and not opt.state


ERRORS = common.optim_error_inputs_func_adamw("cpu", torch.float32)


@pytest.mark.parametrize("error", ERRORS, ids=[e.optimizer_error_input.desc for e in ERRORS])
def test_every_adamw_error_input_raises_as_adamw(error):
    given = error.optimizer_error_input
    params = given.params if given.params is not None else [torch.nn.Parameter(torch.randn(2, 2))]
    kwargs = copy.deepcopy(given.kwargs)

    def construct_and_step():
        opt = sp.SuperpositionalAdamW(params, **kwargs)
        if error.error_on == common.OptimizerErrorEnum.STEP_ERROR:
            opt.step()

    if issubclass(error.error_type, Warning):
        with pytest.warns(error.error_type, match=error.error_regex):
            construct_and_step()
    else:
        with pytest.raises(error.error_type, match=error.error_regex) as raised:
            construct_and_step()
        with pytest.raises(error.error_type) as torch_raised:
            opt = torch.optim.AdamW(params, **copy.deepcopy(given.kwargs))
            if error.error_on == common.OptimizerErrorEnum.STEP_ERROR:
                opt.step()
        assert str(raised.value).startswith(str(torch_raised.value))  # torch's words first


@NEEDS_CUDA
@pytest.mark.parametrize(
    "kwargs",
    [dict(foreach=True, fused=True), dict(fused=True, differentiable=True)],
    ids=["fused and foreach", "fused and differentiable"],
)
def test_cuda_error_inputs_raise_as_adamw(kwargs):
    for error in common.optim_error_inputs_func_adamw("cuda", torch.float32):
        if error.optimizer_error_input.kwargs == kwargs:
            with pytest.raises(error.error_type, match=error.error_regex):
                sp.SuperpositionalAdamW(error.optimizer_error_input.params, **kwargs)
            return
    pytest.fail(f"torch lists no CUDA error input {kwargs}")
