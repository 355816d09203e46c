"""Differentiable simulation: the kernel's adjoint gradients against autograd through the torch
reference and against finite differences (within 1e-8 in float64, 1e-4 in float32)."""

from __future__ import annotations

import pytest
import torch

import superpositional as sp
from superpositional.testing import random_circuit, random_product_circuit


def _inputs(rng, batch, n, dtype=torch.float64):
    theta = torch.tensor(rng.uniform(-3, 3, size=(batch, n)), dtype=dtype, requires_grad=True)
    g = torch.tensor(rng.uniform(-3, 3, size=(batch, n)), dtype=dtype, requires_grad=True)
    return theta, g


def _circuit_with_inputs(rng, n, n_gates):
    """A random circuit that reads at least one input (else nothing is differentiable)."""
    while True:
        c = random_circuit(n, n_gates, rng)
        if c.uses_params or c.uses_grads:
            return c


def _gradients(circuit, theta, g, weights, backend):
    theta.grad = g.grad = None
    (sp.simulate(circuit, theta, g, backend=backend) * weights).sum().backward()
    zero = torch.zeros_like(theta)
    return (theta.grad if theta.grad is not None else zero), (g.grad if g.grad is not None else zero)


@pytest.mark.parametrize("n", range(1, 11))
def test_adjoint_matches_autograd_through_the_reference(cpu_isa, n, rng):
    for _ in range(3):
        c = _circuit_with_inputs(rng, n, int(rng.integers(1, 30)))
        theta, g = _inputs(rng, 9, n)
        weights = torch.tensor(rng.normal(size=(9, n)))
        kernel = _gradients(c, theta, g, weights, "cpu")
        reference = _gradients(c, theta, g, weights, "torch")
        for got, expected in zip(kernel, reference):
            torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def _product_circuit_with_inputs(rng, n, n_gates):
    """A random product-state circuit (compiled without an entangling step) that reads an input."""
    while True:
        c = random_product_circuit(n, n_gates, rng)
        if c.uses_params or c.uses_grads:
            assert c.program().product_only
            return c


@pytest.mark.parametrize("n", range(1, 11))
def test_product_adjoint_matches_autograd_through_the_reference(cpu_isa, n, rng):
    # Product programs take the per-qubit adjoint of adjoint.h; the reference forms every state.
    for _ in range(4):
        c = _product_circuit_with_inputs(rng, n, int(rng.integers(1, 6 * n)))
        theta, g = _inputs(rng, 9, n)
        weights = torch.tensor(rng.normal(size=(9, n)))
        kernel = _gradients(c, theta, g, weights, "cpu")
        reference = _gradients(c, theta, g, weights, "torch")
        for got, expected in zip(kernel, reference):
            torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_random_product_circuits_cover_the_product_adjoints_cases(rng):
    # The test above is only as good as its draws: they must reach real and complex qubits,
    # strings over several qubits and Y factors, which the per-qubit sweep treats separately.
    real = complex_ = multi = has_y = 0
    for _ in range(40):
        program = _product_circuit_with_inputs(rng, 4, 12).program()
        real += len(program.real_prefix_qubits)
        complex_ += 4 - len(program.real_prefix_qubits)
        for x_mask, z_mask, _ in program.observables:
            multi += bin(x_mask | z_mask).count("1") > 1
            has_y += (x_mask & z_mask) != 0
    assert min(real, complex_, multi, has_y) > 0, (real, complex_, multi, has_y)


@pytest.mark.parametrize("preset", ["paper", "entangled", "attention"])
def test_presets_take_the_product_adjoint(preset):
    assert getattr(sp.circuits, preset)(4).program().product_only


def test_product_adjoint_in_float32_within_1e_4(rng):
    _assert_float32_within_1e_4(_product_circuit_with_inputs(rng, 6, 30), 33, "torch", rng)


def _assert_float32_within_1e_4(circuit, batch, reference_backend, rng):
    """The CPU kernel's float32 gradients against the float64 ones of ``reference_backend``."""
    n = circuit.n_qubits
    theta64, g64 = _inputs(rng, batch, n)
    theta32 = theta64.detach().float().requires_grad_()
    g32 = g64.detach().float().requires_grad_()
    weights = torch.tensor(rng.normal(size=(batch, n)))
    expected = _gradients(circuit, theta64, g64, weights, reference_backend)
    got = _gradients(circuit, theta32, g32, weights.float(), "cpu")
    for a, b in zip(got, expected):
        torch.testing.assert_close(a.double(), b, atol=1e-4, rtol=0)


@pytest.mark.parametrize("preset", ["paper", "entangled", "attention"])
def test_presets_against_finite_differences(preset, rng):
    c = getattr(sp.circuits, preset)(4)
    theta, g = _inputs(rng, 5, 4)
    weights = torch.tensor(rng.normal(size=(5, 4)))
    d_theta, d_g = _gradients(c, theta, g, weights, "cpu")
    step = 1e-6
    for which, analytic in ((theta, d_theta), (g, d_g)):
        numeric = torch.zeros_like(analytic)
        for index in range(which.numel()):
            with torch.no_grad():
                flat = which.view(-1)
                flat[index] += step
                plus = (sp.simulate(c, theta, g, backend="cpu") * weights).sum()
                flat[index] -= 2 * step
                minus = (sp.simulate(c, theta, g, backend="cpu") * weights).sum()
                flat[index] += step
            numeric.view(-1)[index] = (plus - minus) / (2 * step)
        torch.testing.assert_close(analytic, numeric, atol=1e-8, rtol=0)


def test_gradcheck_on_random_circuits(rng):
    for n in (1, 3, 5):
        c = _circuit_with_inputs(rng, n, 20)
        theta, g = _inputs(rng, 3, n)
        assert torch.autograd.gradcheck(lambda a, b, c=c: sp.simulate(c, a, b, backend="cpu"), (theta, g))


def test_float32_gradients_within_1e_4(rng):
    _assert_float32_within_1e_4(_circuit_with_inputs(rng, 6, 25), 17, "cpu", rng)


def test_only_the_inputs_that_require_grad_get_gradients(rng):
    c = sp.circuits.entangled(3, observables=["X", "Y", "Z"])
    theta = torch.tensor(rng.uniform(-1, 1, size=(4, 3)), requires_grad=True)
    g = torch.tensor(rng.uniform(-1, 1, size=(4, 3)))
    sp.simulate(c, theta, g, backend="cpu").sum().backward()
    assert theta.grad is not None and theta.grad.abs().sum() > 0 and g.grad is None


def test_gradients_flow_through_leading_dims_and_half_precision(rng):
    c = sp.circuits.paper(2)
    theta = torch.tensor(rng.uniform(-1, 1, size=(3, 5, 2)), dtype=torch.float32, requires_grad=True)
    sp.simulate(c, theta.bfloat16()).float().sum().backward()
    expected = torch.pi * torch.cos(torch.pi * theta.detach().bfloat16().float())
    torch.testing.assert_close(theta.grad, expected, atol=5e-2, rtol=5e-2)


def test_aer_refuses_inputs_that_require_grad(aer):
    theta = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="does not compute gradients"):
        sp.simulate(sp.circuits.paper(2), theta, backend="aer")


def test_no_grad_mode_returns_plain_tensors(rng):
    theta, _ = _inputs(rng, 4, 2)
    with torch.no_grad():
        out = sp.simulate(sp.circuits.paper(2), theta)
    assert not out.requires_grad


def test_create_graph_gives_first_order_gradients_and_refuses_a_second_order(rng):
    # The adjoint gradients are not differentiable: with create_graph=True they are still right,
    # and differentiating them again raises instead of returning a silently wrong zero.
    c = sp.circuits.attention(3)
    theta, g = _inputs(rng, 4, 3)
    weights = torch.tensor(rng.normal(size=(4, 3)), requires_grad=True)
    (d_theta,) = torch.autograd.grad(
        sp.simulate(c, theta, g, backend="cpu"), theta, weights, create_graph=True
    )
    (expected,) = torch.autograd.grad(sp.simulate(c, theta, g, backend="torch"), theta, weights)
    torch.testing.assert_close(d_theta.detach(), expected, atol=1e-12, rtol=0)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        d_theta.sum().backward()


@pytest.mark.parametrize("n", [2, 5, 9])
def test_product_adjoint_matches_the_statevector_adjoint(n, rng):
    # The same gradients by the two sweeps of adjoint.h: per qubit on the product program, and on
    # the full statevector of the program compiled to keep the state.
    from superpositional.backends import Batch, kernel

    compared = 0
    while compared < 3:
        c = _product_circuit_with_inputs(rng, n, 4 * n)
        if c.program(keep_state=True).product_only:
            continue  # no entangling tail: both programs are products
        compared += 1
        theta, g = (t.detach() for t in _inputs(rng, 11, n))
        weights = torch.tensor(rng.normal(size=(11, n)))
        batch = Batch(theta, g, 11, theta.dtype, theta.device)
        product = kernel.simulate_backward(c, batch, weights, want_params=True, want_grads=True)
        full = kernel.simulate_backward(c, batch, weights, want_params=True, want_grads=True, keep_state=True)
        for a, b in zip(product, full):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
