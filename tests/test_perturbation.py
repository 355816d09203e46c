"""``perturbation="preconditioned"``: the circuit term in Adam's normalised units,
``p -= lr (m_hat + lambda e g) / (sqrt(v_hat) + eps)`` (docs/design.md, *The mathematics*), in every
step path; ``quantum_weight=0`` is AdamW whatever the option."""

from __future__ import annotations

import io
import math

import pytest
import torch

import superpositional as sp
from superpositional.testing import random_circuit

NEEDS_CUDA = pytest.mark.skipif("cuda" not in sp.available_backends(), reason="no CUDA")
KERNELS = [
    pytest.param(
        "cpu", marks=pytest.mark.skipif("cpu" not in sp.available_backends(), reason="no extension")
    ),
    pytest.param("cuda", marks=NEEDS_CUDA),
]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
TOL = {
    torch.float32: dict(atol=2e-6, rtol=1e-5),
    torch.float64: dict(atol=1e-13, rtol=1e-12),
    torch.bfloat16: dict(atol=2e-2, rtol=2e-2),
    torch.float16: dict(atol=3e-3, rtol=3e-3),
}
SHAPES = [(), (3,), (4097,), (7, 5), (6, 4), (3, 4, 5)]


def _params(rng, dtype, device="cpu", shapes=SHAPES):
    return [
        torch.nn.Parameter(torch.as_tensor(rng.normal(size=s), dtype=torch.float64).to(device, dtype))
        for s in shapes
    ]


def _twin(params):
    return [torch.nn.Parameter(p.detach().clone()) for p in params]


def _set_grads(rng, *param_lists, scale=1.0):
    for group in zip(*param_lists):
        g = torch.as_tensor(rng.normal(size=group[0].shape) * scale, dtype=torch.float64)
        for p in group:
            p.grad = g.to(p.device, p.dtype)


def _device_of(backend: str) -> str:
    return "cuda" if backend == "cuda" else "cpu"


@pytest.mark.parametrize("backend", [*KERNELS, "torch", "aer"])
@pytest.mark.parametrize("coverage", ["paper", "all"])
def test_the_step_is_the_formula_written_out(backend, coverage, rng, request):
    # circuits.paper(4) gives e_i = sin(pi theta_i) on every element of a group, so the whole step can
    # be written by hand in float64: p <- p (1 - lr wd) - lr (m_hat + lambda e g) / (sqrt(v_hat) + eps).
    if backend == "aer":
        request.getfixturevalue("aer")
    lr, b1, b2, eps, wd, lam = 1e-2, 0.9, 0.999, 1e-8, 0.01, 0.5
    shapes = [(10,), (3, 5), (2,)]
    device = _device_of(backend)
    params = _params(rng, torch.float64, device, shapes)
    expected = [p.detach().clone() for p in params]
    m = [torch.zeros_like(p) for p in expected]
    v = [torch.zeros_like(p) for p in expected]
    opt = sp.SuperpositionalAdamW(
        params,
        lr=lr,
        betas=(b1, b2),
        eps=eps,
        weight_decay=wd,
        quantum_weight=lam,
        circuit=sp.circuits.paper(4),
        coverage=coverage,
        backend=backend,
        perturbation="preconditioned",
    )
    for t in range(1, 6):
        _set_grads(rng, params)
        for i, p in enumerate(params):
            theta = expected[i].reshape(-1)
            e = torch.sin(math.pi * theta)
            if coverage == "paper":
                e[4:] = 0
            g = p.grad
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g**2
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            update = (m_hat + lam * e.reshape(p.shape) * g) / (v_hat.sqrt() + eps)
            expected[i] = expected[i] * (1 - lr * wd) - lr * update
        opt.step()
        for p, want in zip(params, expected):
            torch.testing.assert_close(p.detach(), want, atol=1e-12, rtol=1e-11)


@pytest.mark.parametrize("backend", [*KERNELS, "torch"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("coverage", ["paper", "all"])
def test_lambda_zero_is_adamw_bit_for_bit_whatever_the_option(backend, dtype, coverage, rng):
    device = _device_of(backend)
    a_params = _params(rng, dtype, device)
    b_params = _twin(a_params)
    kwargs = dict(lr=3e-3, weight_decay=0.05, quantum_weight=0.0, coverage=coverage, backend=backend)
    a = sp.SuperpositionalAdamW(a_params, perturbation="preconditioned", **kwargs)
    b = sp.SuperpositionalAdamW(b_params, **kwargs)
    for _ in range(5):
        _set_grads(rng, a_params, b_params)
        a.step()
        b.step()
    for pa, pb in zip(a_params, b_params):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("backend", KERNELS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("preset", "coverage"), [("paper", "paper"), ("entangled", "all"), ("random", "all"), ("random", "paper")]
)
def test_kernel_matches_the_torch_backend_step_by_step(backend, dtype, preset, coverage, rng):
    n = int(rng.choice([3, 4]))
    circuit = random_circuit(n, 14, rng) if preset == "random" else getattr(sp.circuits, preset)(n)
    kwargs = dict(
        lr=1e-2,
        weight_decay=0.1,
        quantum_weight=2.0,
        circuit=circuit,
        coverage=coverage,
        perturbation="preconditioned",
    )
    a_params = _params(rng, dtype, _device_of(backend))
    b_params = _twin(a_params)
    a = sp.SuperpositionalAdamW(a_params, backend=backend, **kwargs)
    b = sp.SuperpositionalAdamW(b_params, backend="torch", **kwargs)
    for _ in range(8):
        _set_grads(rng, a_params, b_params)
        a.step()
        b.step()
        for pa, pb in zip(a_params, b_params):
            torch.testing.assert_close(pa.detach().double(), pb.detach().double(), **TOL[dtype])


@pytest.mark.parametrize("backend", [*KERNELS, "torch"])
def test_the_term_moves_p_in_normalised_units(backend, rng):
    # Adam's step does not change when every gradient is scaled (with eps = 0, exactly up to rounding);
    # the preconditioned term keeps that invariance, while the paper's term shrinks with the gradient.
    device = _device_of(backend)
    base = _params(rng, torch.float64, device, [(64,)])[0]
    grad = torch.as_tensor(rng.normal(size=64), dtype=torch.float64).to(device)
    moved = {}
    for perturbation in ("paper", "preconditioned"):
        for scale in (1.0, 1e-3):
            p = torch.nn.Parameter(base.detach().clone())
            p.grad = grad * scale
            sp.SuperpositionalAdamW(
                [p],
                eps=0.0,
                weight_decay=0.0,
                quantum_weight=5.0,
                coverage="all",
                backend=backend,
                perturbation=perturbation,
            ).step()
            moved[perturbation, scale] = (p.detach() - base).abs()
    torch.testing.assert_close(moved["preconditioned", 1.0], moved["preconditioned", 1e-3], rtol=1e-9, atol=0)
    assert not torch.allclose(moved["paper", 1.0], moved["paper", 1e-3], rtol=1e-3, atol=0)


def test_the_option_is_kept_per_group_and_through_a_checkpoint(rng):
    a, b = _params(rng, torch.float32, "cpu", [(5,), (6,)])
    opt = sp.SuperpositionalAdamW([{"params": [a], "perturbation": "preconditioned"}, {"params": [b]}])
    assert [opt.group_options(i)["perturbation"] for i in range(2)] == ["preconditioned", "paper"]
    _set_grads(rng, [a, b])
    opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    fresh = sp.SuperpositionalAdamW([{"params": [a]}, {"params": [b]}])
    fresh.load_state_dict(torch.load(buffer))
    assert [fresh.group_options(i)["perturbation"] for i in range(2)] == ["preconditioned", "paper"]


@pytest.mark.parametrize("bad", ["Preconditioned", "adam", "", None, 1])
def test_bad_values_are_refused_by_name_and_change_nothing(bad, rng):
    with pytest.raises(ValueError, match="perturbation"):
        sp.SuperpositionalAdamW(_params(rng, torch.float32, "cpu", [(3,)]), perturbation=bad)
    params = _params(rng, torch.float32, "cpu", [(3,), (4,)])
    opt = sp.SuperpositionalAdamW(params)
    _set_grads(rng, params)
    opt.param_groups[0]["perturbation"] = bad
    before = [p.detach().clone() for p in params]
    with pytest.raises(ValueError, match="perturbation"):
        opt.step()
    assert all(torch.equal(p, q) for p, q in zip(params, before))
    assert not opt.state
