"""The ``state_dtype`` option: 16-bit parameters' states in float32 (the default) or in the
parameter's own dtype, as torch.optim.AdamW keeps them (docs/design.md, *State dtypes*)."""

from __future__ import annotations

import io

import pytest
import torch

import superpositional as sp

NEEDS_CUDA = pytest.mark.skipif("cuda" not in sp.available_backends(), reason="no CUDA")
DEVICES = ["cpu", pytest.param("cuda", marks=NEEDS_CUDA)]
HALF = [torch.bfloat16, torch.float16]
SHAPES = [(), (1,), (5,), (4097,), (7, 5), (6, 4), (3, 4, 5), (33, 64)]
# One unit in the last place of each 16-bit format, relative: a 16-bit value that was computed
# from float32 math may land on either neighbour when two float32 paths differ in their last bit.
ULP = {torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10}


def _params(rng, dtype, device, shapes=SHAPES):
    return [
        torch.nn.Parameter(torch.as_tensor(rng.normal(size=s), dtype=torch.float64).to(device, dtype))
        for s in shapes
    ]


def _copies(params):
    return [torch.nn.Parameter(p.detach().clone()) for p in params]


def _grads(rng, *param_lists):
    for group in zip(*param_lists):
        g = torch.as_tensor(rng.normal(size=group[0].shape), dtype=torch.float64)
        for p in group:
            p.grad = g.to(p.device, p.dtype)


def _assert_within_one_ulp(actual, expected, dtype):
    """Every element equal, or one of the two nearest 16-bit neighbours of the other's value (one
    subnormal step apart near zero)."""
    a, b = actual.detach().double().cpu(), expected.detach().double().cpu()
    scale = torch.maximum(a.abs(), b.abs())
    tolerance = torch.maximum(
        ULP[dtype] * scale, torch.full_like(scale, torch.finfo(dtype).smallest_normal * ULP[dtype])
    )
    assert bool(((a - b).abs() <= tolerance).all()), f"max difference {(a - b).abs().max()}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF)
def test_param_states_have_the_parameter_dtype_and_torch_memory(device, dtype, rng):
    ours = _params(rng, dtype, device)
    theirs = _copies(ours)
    opt = sp.SuperpositionalAdamW(ours, state_dtype="param", amsgrad=True)
    ref = torch.optim.AdamW(theirs, fused=True, amsgrad=True)
    _grads(rng, ours, theirs)
    opt.step()
    ref.step()

    def state_bytes(optimizer):
        return sum(
            t.numel() * t.element_size()
            for s in optimizer.state.values()
            for k, t in s.items()
            if k != "step"
        )

    for p in ours:
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert opt.state[p][name].dtype == dtype
    assert state_bytes(opt) == state_bytes(ref)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("amsgrad", [False, True])
def test_quantum_weight_zero_with_param_states_is_torch_fused_adamw(device, dtype, amsgrad, rng):
    # torch's fused AdamW reads p, g and its 16-bit states, computes in float32 and rounds each
    # result once: so does ours. Their float32 formulas differ in the order of operations (torch's
    # CUDA kernel forms beta1 m + (1 - beta1) g, ours torch's lerp; bias corrections in float or
    # double), so after one step a result may sit on the neighbouring 16-bit value, never further.
    # Later, such a difference is carried in the 16-bit states: after k steps at most k roundings
    # apart, each at most one ulp of the largest value the tensor held (a moment near zero by
    # cancellation keeps the absolute difference of the larger terms it came from).
    ours = _params(rng, dtype, device)
    theirs = _copies(ours)
    kwargs = dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, amsgrad=amsgrad)
    opt = sp.SuperpositionalAdamW(ours, quantum_weight=0.0, state_dtype="param", **kwargs)
    ref = torch.optim.AdamW(theirs, fused=True, **kwargs)
    for step in range(4):
        _grads(rng, ours, theirs)
        opt.step()
        ref.step()
        for a, b in zip(ours, theirs):
            pairs = [(a, b)] + [(opt.state[a][k], ref.state[b][k]) for k in ("exp_avg", "exp_avg_sq")]
            for mine, torchs in pairs:
                assert mine.dtype == torchs.dtype == dtype
                if step == 0:
                    _assert_within_one_ulp(mine, torchs, dtype)
                else:
                    scale = float(torchs.detach().abs().max()) if torchs.numel() else 0.0
                    atol = (step + 1) * ULP[dtype] * scale
                    torch.testing.assert_close(mine, torchs, rtol=ULP[dtype], atol=atol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize(("circuit", "coverage"), [("paper", "paper"), ("entangled", "all")])
def test_kernel_with_param_states_matches_the_torch_reference(device, dtype, circuit, coverage, rng):
    kwargs = dict(
        lr=1e-2,
        weight_decay=0.1,
        quantum_weight=0.7,
        circuit=getattr(sp.circuits, circuit)(4),
        coverage=coverage,
        state_dtype="param",
    )
    ours = _params(rng, dtype, device)
    ref = _copies(ours)
    opt = sp.SuperpositionalAdamW(ours, backend=device, **kwargs)
    opt_ref = sp.SuperpositionalAdamW(ref, backend="torch", **kwargs)
    _grads(rng, ours, ref)
    opt.step()
    opt_ref.step()
    for a, b in zip(ours, ref):
        _assert_within_one_ulp(a, b, dtype)
        for name in ("exp_avg", "exp_avg_sq"):
            assert opt.state[a][name].dtype == opt_ref.state[b][name].dtype == dtype
            _assert_within_one_ulp(opt.state[a][name], opt_ref.state[b][name], dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_full_precision_parameters_are_unaffected(dtype, rng):
    ours = _params(rng, dtype, "cpu")
    default = _copies(ours)
    opt = sp.SuperpositionalAdamW(ours, state_dtype="param", coverage="all")
    opt_default = sp.SuperpositionalAdamW(default, coverage="all")
    for _ in range(3):
        _grads(rng, ours, default)
        opt.step()
        opt_default.step()
    for a, b in zip(ours, default):
        assert torch.equal(a, b)
        assert opt.state[a]["exp_avg"].dtype == dtype


@pytest.mark.parametrize("dtype", HALF)
def test_torch_checkpoint_round_trips_unchanged(dtype, rng):
    theirs = _params(rng, dtype, "cpu")
    ref = torch.optim.AdamW(theirs, fused=True, amsgrad=True)
    _grads(rng, theirs)
    ref.step()
    saved = ref.state_dict()
    ours = _copies(theirs)
    opt = sp.SuperpositionalAdamW(ours, amsgrad=True, state_dtype="param")
    opt.load_state_dict(saved)
    mine = opt.state_dict()
    for index, entry in saved["state"].items():
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert mine["state"][index][name].dtype == dtype
            assert torch.equal(mine["state"][index][name], entry[name])
    # The default keeps float32 states: the same checkpoint loads widened, exactly.
    widened = sp.SuperpositionalAdamW(_copies(theirs), amsgrad=True)
    widened.load_state_dict(saved)
    for index, entry in saved["state"].items():
        state = widened.state_dict()["state"][index]["exp_avg"]
        assert state.dtype == torch.float32
        assert torch.equal(state, entry["exp_avg"].float())


def test_the_option_is_saved_as_plain_data_and_restored(rng):
    params = _params(rng, torch.bfloat16, "cpu", [(5, 3)])
    opt = sp.SuperpositionalAdamW(params, state_dtype="param")
    _grads(rng, params)
    opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer)  # weights_only: plain data only
    assert saved["param_groups"][0]["state_dtype"] == "param"
    restored = sp.SuperpositionalAdamW(_copies(params))  # default float32 states...
    restored.load_state_dict(saved)  # ...but the checkpoint's option wins
    assert restored.group_options(0)["state_dtype"] == "param"
    assert next(iter(restored.state.values()))["exp_avg"].dtype == torch.bfloat16


def test_changing_the_option_converts_the_states(rng):
    params = _params(rng, torch.float16, "cpu", [(9, 4)])
    opt = sp.SuperpositionalAdamW(params)
    _grads(rng, params)
    opt.step()
    assert opt.state[params[0]]["exp_avg"].dtype == torch.float32
    opt.param_groups[0]["state_dtype"] = "param"
    _grads(rng, params)
    opt.step()
    assert opt.state[params[0]]["exp_avg"].dtype == torch.float16
    assert float(opt.state[params[0]]["step"]) == 2


@pytest.mark.parametrize("bad", [torch.bfloat16, "bfloat16", "half", 16, None])
def test_bad_values_are_refused_by_name(bad, rng):
    params = _params(rng, torch.bfloat16, "cpu", [(3,)])
    with pytest.raises(ValueError, match=r"state_dtype must be torch\.float32"):
        sp.SuperpositionalAdamW(params, state_dtype=bad)
    opt = sp.SuperpositionalAdamW(params)
    _grads(rng, params)
    opt.param_groups[0]["state_dtype"] = bad
    before = params[0].detach().clone()
    with pytest.raises(ValueError, match="state_dtype"):
        opt.step()
    assert torch.equal(params[0], before) and not opt.state


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("states", ["float32", "param"])
def test_every_16_bit_value_converts_exactly_in_the_cpu_kernel(dtype, states):
    # The CPU kernels convert 16-bit storage with integer arithmetic of their own (so that the
    # loops vectorise): every bit pattern must read and write back unchanged (NaN stays NaN), and
    # a float32 result must round to nearest even exactly as torch rounds it, subnormals included.
    every = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype)
    p = torch.nn.Parameter(every.clone())
    p.grad = torch.zeros_like(p)
    options = dict(
        weight_decay=0.0, quantum_weight=0.0, state_dtype=torch.float32 if states == "float32" else states
    )
    sp.SuperpositionalAdamW([p], lr=0.0, backend="cpu", **options).step()
    nan = every.isnan()
    assert torch.equal(p.detach()[~nan].view(torch.int16), every[~nan].view(torch.int16))
    assert bool(p.detach()[nan].isnan().all())

    # With g = 0 the step is p * (1 - lr wd) exactly in float32, then one rounding.
    finite = every[every.isfinite()]
    q = torch.nn.Parameter(finite.clone())
    q.grad = torch.zeros_like(q)
    lr, wd = 1e-3, 0.37
    sp.SuperpositionalAdamW([q], lr=lr, backend="cpu", **{**options, "weight_decay": wd}).step()
    decay = torch.tensor(1 - lr * wd, dtype=torch.float64).float()
    assert torch.equal(q.detach().view(torch.int16), (finite.float() * decay).to(dtype).view(torch.int16))
