"""``stochastic_rounding``: 16-bit parameter writes rounded stochastically, unbiased and
reproducible from the seed, the parameter and the step (docs/design.md, *Stochastic rounding*)."""

from __future__ import annotations

import io
import math

import pytest
import torch

import superpositional as sp
from superpositional.optim.rounding import round_stochastically, rounding_bits, rounding_key

NEEDS_CUDA = pytest.mark.skipif("cuda" not in sp.available_backends(), reason="no CUDA")
DEVICES = ["cpu", pytest.param("cuda", marks=NEEDS_CUDA)]
HALF = [torch.bfloat16, torch.float16]


def _param(rng, dtype, device, shape, scale=1.0):
    values = torch.as_tensor(rng.normal(size=shape) * scale, dtype=torch.float64)
    return torch.nn.Parameter(values.to(device, dtype))


def _twin(p, dtype=None):
    return torch.nn.Parameter(p.detach().clone().to(dtype or p.dtype))


def _neighbours(x: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The values of ``dtype`` next to each finite float32 ``x``, nearer to and farther from zero
    (both ``x`` where ``dtype`` holds it), as float32: stepped on the format's bits."""
    nearest = x.to(dtype)
    bits = nearest.view(torch.int16).to(torch.int32)
    sign, magnitude = bits & 0x8000, bits & 0x7FFF
    overshoot = nearest.float().abs() > x.abs()
    lower = torch.where(overshoot, magnitude - 1, magnitude)
    exact = nearest.float() == x
    upper = torch.where(exact, lower, lower + 1)

    def value(m: torch.Tensor) -> torch.Tensor:
        return (m | sign).to(torch.int16).view(dtype).float()

    return value(lower), value(upper)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("coverage", ["paper", "all"])
def test_kernel_rounds_as_the_reference_from_the_same_float32_update(device, dtype, coverage, rng):
    # The float32 update x the kernel rounds is what the same kernel computes for float32
    # parameters holding the same values (states float32 in both). The kernel's integer rounding
    # and the reference's float64 rounding (optim/rounding.py) must then agree bit for bit.
    shape = (37, 40)
    p = _param(rng, dtype, device, shape)
    exact = _twin(p, torch.float32)
    g = torch.as_tensor(rng.normal(size=shape)).to(device)
    p.grad, exact.grad = g.to(dtype), g.to(dtype).float()
    kwargs = dict(lr=1e-3, quantum_weight=0.5, coverage=coverage, circuit=sp.circuits.entangled(4))
    opt = sp.SuperpositionalAdamW([p], stochastic_rounding=1234, **kwargs)
    sp.SuperpositionalAdamW([exact], **kwargs).step()
    opt.step()
    index = torch.arange(p.numel(), device=device).view(shape)
    bits = rounding_bits(rounding_key(1234, 0, 1), index)
    expected = round_stochastically(exact.detach(), dtype, bits)
    assert torch.equal(p.detach(), expected)


@pytest.mark.parametrize("dtype", HALF)
def test_the_reference_rounding_is_unbiased_and_picks_a_neighbour(dtype, rng):
    # Values at random places between neighbours, each rounded many times with fresh bits.
    x = torch.as_tensor(rng.normal(size=64), dtype=torch.float32)
    x = torch.cat([x, x * 1e-3, torch.tensor([2.0**-20, -(2.0**-25), 3e-39, 0.0, -0.0])])
    x = x[(x.abs() < torch.finfo(dtype).max)]
    draws = 4000
    bits = torch.as_tensor(rng.integers(0, 2**32, size=(draws, x.numel())), dtype=torch.int64)
    rounded = round_stochastically(x.expand(draws, -1), dtype, bits).float()
    nearer, farther = _neighbours(x, dtype)
    assert bool(((rounded == nearer) | (rounded == farther)).all())
    # The mean of the draws equals x within 5 standard errors of a two-point distribution.
    spread = (farther - nearer).double().abs()
    p_far = (x.double() - nearer.double()).abs() / torch.where(spread > 0, spread, 1.0)
    error = spread * torch.sqrt(p_far * (1 - p_far) / draws)
    deviation = (rounded.double().mean(0) - x.double()).abs()
    assert bool((deviation <= 5 * error + 1e-300).all())
    # All-zero bits always round away from zero (r < threshold whenever x is inexact), all-one
    # bits always toward it: the two extremes of the comparison.
    assert torch.equal(round_stochastically(x, dtype, torch.zeros_like(bits[0])).float(), farther)
    assert torch.equal(round_stochastically(x, dtype, torch.full_like(bits[0], 2**32 - 1)).float(), nearer)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF)
def test_mean_of_many_rounded_updates_is_the_exact_update(device, dtype, rng):
    # One step of many parameters at 1.0 whose update (about lr: Adam's first step is normalised)
    # is below half an ulp: rounding to nearest leaves every one at 1.0; stochastic rounding moves
    # them by the update on average.
    n = 200_000
    start = torch.ones(n, dtype=dtype, device=device)
    grad = torch.as_tensor(rng.uniform(0.5, 1.5, size=n)).to(device, dtype)
    kwargs = dict(lr=1e-4, weight_decay=0.0, quantum_weight=0.0)
    results = {}
    for name, options in {"nearest": {}, "stochastic": {"stochastic_rounding": 7}, "exact": {}}.items():
        p = torch.nn.Parameter(start.clone() if name != "exact" else start.float())
        p.grad = grad.clone() if name != "exact" else grad.float()
        sp.SuperpositionalAdamW([p], **kwargs, **options).step()
        results[name] = p.detach().double()
    assert bool((results["nearest"] == 1.0).all())
    ulp = 2.0 ** (-8 if dtype == torch.bfloat16 else -11)  # below 1.0
    diff = results["stochastic"] - results["exact"]
    # Each rounding error lies within one ulp and has standard deviation at most ulp / 2.
    assert bool((diff.abs() <= ulp).all())
    assert abs(float(diff.mean())) <= 5 * (ulp / 2) / math.sqrt(n)
    assert bool((results["stochastic"] < 1.0).any())


@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_same_bits_and_resume_is_bit_for_bit(device, rng):
    shapes = [(40, 8), (33,), (5, 4, 3)]
    initial = [_param(rng, torch.bfloat16, device, s) for s in shapes]
    grads = [
        [torch.as_tensor(rng.normal(size=s)).to(device, torch.bfloat16) for s in shapes] for _ in range(6)
    ]
    kwargs = dict(lr=1e-2, quantum_weight=0.3, coverage="all", stochastic_rounding=99, state_dtype="param")

    def run(params, opt, steps):
        for step in steps:
            for p, g in zip(params, grads[step]):
                p.grad = g.clone()
            opt.step()

    whole = [_twin(p) for p in initial]
    run(whole, sp.SuperpositionalAdamW(whole, **kwargs), range(6))
    again = [_twin(p) for p in initial]
    run(again, sp.SuperpositionalAdamW(again, **kwargs), range(6))
    assert all(torch.equal(a, b) for a, b in zip(whole, again))

    first = [_twin(p) for p in initial]
    opt = sp.SuperpositionalAdamW(first, **kwargs)
    run(first, opt, range(3))
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in first], "optimizer": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    resumed = [torch.nn.Parameter(t.clone()) for t in saved["params"]]
    opt = sp.SuperpositionalAdamW(resumed, lr=1.0)  # the checkpoint's options win
    opt.load_state_dict(saved["optimizer"])
    assert opt.group_options(0)["stochastic_rounding"] == 99
    run(resumed, opt, range(3, 6))
    assert all(torch.equal(a, b) for a, b in zip(whole, resumed))

    other = [_twin(p) for p in initial]
    run(other, sp.SuperpositionalAdamW(other, **{**kwargs, "stochastic_rounding": 100}), range(6))
    assert not all(torch.equal(a, b) for a, b in zip(whole, other))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF)
def test_kernel_matches_the_torch_backend_within_an_ulp(device, dtype, rng):
    shape = (19, 12)
    ours = _param(rng, dtype, device, shape)
    ref = _twin(ours)
    kwargs = dict(lr=1e-2, quantum_weight=0.7, coverage="all", stochastic_rounding=True)
    opt = sp.SuperpositionalAdamW([ours], backend=device, **kwargs)
    opt_ref = sp.SuperpositionalAdamW([ref], backend="torch", **kwargs)
    for _ in range(3):
        g = torch.as_tensor(rng.normal(size=shape)).to(device, dtype)
        ours.grad, ref.grad = g, g.clone()
        opt.step()
        opt_ref.step()
    # The same bits; the float32 updates agree to their last bit or so, so a value may land on
    # the other neighbour only where the update sits within a float32 ulp of the threshold.
    a, b = ours.detach().double(), ref.detach().double()
    ulp = 2.0 ** (-7 if dtype == torch.bfloat16 else -10)
    assert bool(((a - b).abs() <= ulp * torch.maximum(a.abs(), b.abs())).all())
    assert float((a != b).double().mean()) < 0.01


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_full_precision_parameters_are_written_as_without_it(dtype, rng):
    p = _param(rng, dtype, "cpu", (8, 8))
    q = _twin(p)
    g = torch.as_tensor(rng.normal(size=(8, 8))).to(dtype)
    p.grad, q.grad = g, g.clone()
    sp.SuperpositionalAdamW([p], stochastic_rounding=True, coverage="all").step()
    sp.SuperpositionalAdamW([q], coverage="all").step()
    assert torch.equal(p, q)


@pytest.mark.parametrize(
    ("bad", "error"), [("yes", TypeError), (1.5, TypeError), (-1, ValueError), (2**32, ValueError)]
)
def test_bad_values_are_refused_by_name(bad, error, rng):
    p = _param(rng, torch.bfloat16, "cpu", (3,))
    with pytest.raises(error, match="stochastic_rounding"):
        sp.SuperpositionalAdamW([p], stochastic_rounding=bad)
