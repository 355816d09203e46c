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
