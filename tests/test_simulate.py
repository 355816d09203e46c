"""``sp.simulate``'s contract: shapes, dtypes, numpy, backends and clear errors (docs/design.md,
*Public API* and *Reliability*)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import superpositional as sp
from superpositional import backends


def test_available_backends_lists_what_imports():
    names = sp.available_backends()
    assert "torch" in names
    assert names == sorted(names, key=["cpu", "cuda", "torch", "aer"].index)


def test_auto_picks_the_cpu_kernel_for_cpu_tensors(ext):
    assert backends.resolve("auto", torch.device("cpu")).name == "cpu"


def test_leading_dimensions_and_numpy_round_trip(rng):
    theta = rng.uniform(-1, 1, size=(2, 3, 4))
    got = sp.simulate(sp.circuits.paper(4), theta)
    assert isinstance(got, np.ndarray) and got.shape == (2, 3, 4) and got.dtype == np.float64
    np.testing.assert_allclose(got, np.sin(math.pi * theta), atol=1e-13)
    got, state = sp.simulate(sp.circuits.paper(4), theta[0], return_state=True)
    assert state.shape == (3, 16) and state.dtype == np.complex128


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_compute_in_float32(dtype, rng):
    theta = torch.from_numpy(rng.uniform(-1, 1, size=(64, 4))).to(dtype)
    got = sp.simulate(sp.circuits.paper(4), theta)
    assert got.dtype == dtype
    expected = torch.sin(math.pi * theta.float()).to(dtype)
    torch.testing.assert_close(got, expected)


def test_one_row_without_batch_dimension():
    got = sp.simulate(sp.circuits.paper(2), torch.tensor([0.5, 1 / 6], dtype=torch.float64))
    torch.testing.assert_close(got, torch.tensor([1.0, 0.5], dtype=torch.float64))


def test_empty_batch():
    got = sp.simulate(sp.circuits.entangled(3), torch.zeros(0, 3), torch.zeros(0, 3))
    assert got.shape == (0, 3)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: sp.simulate("paper", torch.zeros(1, 4)), TypeError, "superpositional.Circuit"),
        (lambda: sp.simulate(sp.circuits.paper(4)), ValueError, "reads parameters"),
        (lambda: sp.simulate(sp.circuits.entangled(2), torch.zeros(1, 2)), ValueError, "reads gradients"),
        (lambda: sp.simulate(sp.Circuit(2).h(0)), ValueError, "set the batch"),
        (lambda: sp.simulate(sp.circuits.paper(4), torch.zeros(5, 3)), ValueError, r"shape \[\.\.\., 4\]"),
        (
            lambda: sp.simulate(sp.circuits.paper(4), torch.zeros(5, 4, dtype=torch.int64)),
            TypeError,
            "floating-point",
        ),
        (
            lambda: sp.simulate(sp.circuits.entangled(2), torch.zeros(3, 2), torch.zeros(4, 2)),
            ValueError,
            "same shape",
        ),
        (
            lambda: sp.simulate(
                sp.circuits.entangled(2), torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.float64)
            ),
            ValueError,
            "same dtype",
        ),
        (lambda: sp.simulate(sp.circuits.paper(2), [[0.1, 0.2]]), TypeError, "torch.Tensor or numpy"),
        (
            lambda: sp.simulate(sp.circuits.paper(2), torch.zeros(1, 2), backend="gpu"),
            ValueError,
            "unknown backend 'gpu'",
        ),
        (
            lambda: sp.simulate(sp.circuits.paper(2), torch.zeros(1, 2), backend=3),
            TypeError,
            "backend is a name",
        ),
    ],
)
def test_bad_calls_get_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_inputs_are_never_modified(rng):
    theta = torch.from_numpy(rng.normal(size=(8, 4)))
    g = torch.from_numpy(rng.normal(size=(8, 4)))
    before = theta.clone(), g.clone()
    for backend in [b for b in sp.available_backends() if b not in ("aer", "cuda")]:
        sp.simulate(sp.circuits.entangled(4), theta, g, backend=backend, return_state=True)
    assert torch.equal(theta, before[0]) and torch.equal(g, before[1])


def test_fallback_without_the_extension_warns(monkeypatch):
    monkeypatch.setattr(backends, "extension", lambda: None)
    with pytest.warns(RuntimeWarning, match="torch backend"):
        assert backends.resolve("auto", torch.device("cpu")).name == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backends.resolve("torch", torch.device("cpu")).name == "torch"


def _backend_param(name):
    needs = {"cpu": "cpu", "cuda": "cuda"}.get(name)
    return pytest.param(
        name,
        marks=pytest.mark.skipif(
            needs is not None and needs not in sp.available_backends(), reason="not built"
        ),
    )


@pytest.mark.parametrize("backend", [_backend_param("cpu"), _backend_param("cuda"), "torch", "aer"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_out_receives_the_expectations_and_is_returned(backend, dtype, rng, request):
    if backend == "aer":
        request.getfixturevalue("aer")
    device = "cuda" if backend == "cuda" else "cpu"
    circuit = sp.circuits.entangled(4)
    theta = torch.from_numpy(rng.uniform(-1, 1, size=(2, 3, 4))).to(device, dtype)
    grads = torch.from_numpy(rng.normal(size=(2, 3, 4))).to(device, dtype)
    # The same program as without out=: bit for bit (with return_state the kernels run the full
    # statevector program, which rounds differently from the product form, so each is compared
    # with its own kind of call).
    expected = sp.simulate(circuit, theta, grads, backend=backend)
    out = torch.full((2, 3, 4), float("nan"), dtype=dtype, device=device)
    got = sp.simulate(circuit, theta, grads, backend=backend, out=out)
    assert got is out
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    expected, expected_state = sp.simulate(circuit, theta, grads, backend=backend, return_state=True)
    out.fill_(float("nan"))
    got, state = sp.simulate(circuit, theta, grads, backend=backend, return_state=True, out=out)
    assert got is out
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(state, expected_state, rtol=0, atol=0)


def test_out_is_written_in_place_by_the_kernel(ext, rng):
    theta = torch.from_numpy(rng.uniform(-1, 1, size=(64, 4)))
    out = torch.empty(64, 4, dtype=torch.float64)
    address = out.data_ptr()
    sp.simulate(sp.circuits.paper(4), theta, out=out)
    assert out.data_ptr() == address
    torch.testing.assert_close(out, torch.sin(math.pi * theta), atol=1e-13, rtol=0)


@pytest.mark.parametrize(
    ("make_out", "error", "message"),
    [
        (lambda: torch.zeros(5, 3), ValueError, r"out must be a \[5, 4\] torch.float32"),
        (lambda: torch.zeros(5, 4, dtype=torch.float64), ValueError, "out must be a"),
        (lambda: torch.zeros(4, 5).t(), ValueError, "out must be contiguous"),
        (lambda: np.zeros((5, 4), dtype=np.float32), TypeError, "out must be a torch.Tensor"),
    ],
)
def test_a_bad_out_is_refused_and_nothing_is_written(make_out, error, message, rng):
    theta = torch.from_numpy(rng.uniform(-1, 1, size=(5, 4))).float()
    out = make_out()
    before = out.copy() if isinstance(out, np.ndarray) else out.clone()
    with pytest.raises(error, match=message):
        sp.simulate(sp.circuits.paper(4), theta, out=out)
    assert (out == before).all()


def test_out_refuses_autograd_and_numpy_inputs(rng):
    theta = torch.from_numpy(rng.uniform(-1, 1, size=(5, 4))).requires_grad_()
    with pytest.raises(RuntimeError, match="out= does not support automatic differentiation"):
        sp.simulate(sp.circuits.paper(4), theta, out=torch.zeros(5, 4, dtype=torch.float64))
    with torch.no_grad():  # no graph, so out= is fine
        sp.simulate(sp.circuits.paper(4), theta, out=torch.zeros(5, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="numpy inputs return a new array"):
        sp.simulate(sp.circuits.paper(4), theta.detach().numpy(), out=torch.zeros(5, 4, dtype=torch.float64))
