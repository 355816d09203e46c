"""The CPU kernel against the independent torch reference (docs/design.md, *Validation*), on every
instruction set."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import superpositional as sp
from superpositional.testing import max_phase_aligned_error, random_circuit

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
DTYPES = [torch.float32, torch.float64]


def _inputs(rng, shape, dtype, spread=math.pi):
    return torch.from_numpy(rng.uniform(-spread, spread, size=shape)).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", range(1, 11))
def test_random_circuits_match_reference(cpu_isa, dtype, n, rng):
    batch = int(rng.choice([1, 3, 17, 33]))
    for _ in range(3):
        c = random_circuit(n, int(rng.integers(1, 40)), rng)
        theta, g = _inputs(rng, (batch, n), dtype), _inputs(rng, (batch, n), dtype)
        expected, state_ref = sp.simulate(c, theta, g, backend="torch", return_state=True)
        got = sp.simulate(c, theta, g, backend="cpu")
        got_with_state, state = sp.simulate(c, theta, g, backend="cpu", return_state=True)
        torch.testing.assert_close(got, expected, atol=TOL[dtype], rtol=0)
        torch.testing.assert_close(got_with_state, expected, atol=TOL[dtype], rtol=0)
        # Same conventions as the reference, so the states agree without a phase fix-up.
        torch.testing.assert_close(state, state_ref, atol=TOL[dtype], rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 3, 4097])
@pytest.mark.parametrize("preset", ["paper", "entangled"])
def test_presets_at_odd_batch_sizes(cpu_isa, dtype, batch, preset, rng):
    for n in (1, 4, 5):
        c = getattr(sp.circuits, preset)(n)
        theta, g = _inputs(rng, (batch, n), dtype, 2.0), _inputs(rng, (batch, n), dtype, 2.0)
        expected = sp.simulate(c, theta, g, backend="torch")
        torch.testing.assert_close(sp.simulate(c, theta, g, backend="cpu"), expected, atol=TOL[dtype], rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_output_is_written(ext, cpu_isa, dtype, rng):
    # Poison the buffers, call the kernel directly, and check every slot changed.
    for n, batch in [(1, 1), (3, 37), (4, 4097), (9, 5)]:
        c = random_circuit(n, 12, rng)
        theta, g = _inputs(rng, (batch, n), dtype), _inputs(rng, (batch, n), dtype)
        out = torch.full((batch, n), float("nan"), dtype=dtype)
        cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
        state = torch.full((batch, 2**n), complex("nan"), dtype=cdtype)
        name = ext.DType.float32 if dtype == torch.float32 else ext.DType.float64
        ext.simulate_cpu(
            c.program(keep_state=True),
            theta.data_ptr(),
            theta.stride(),
            g.data_ptr(),
            g.stride(),
            out.data_ptr(),
            state.data_ptr(),
            batch,
            name,
            0,
        )
        assert torch.isfinite(out).all() and torch.isfinite(torch.view_as_real(state)).all()
        norms = (state.abs() ** 2).sum(dim=1).double()
        torch.testing.assert_close(norms, torch.ones(batch, dtype=torch.float64), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_inputs_need_no_copy_and_match(cpu_isa, dtype, rng):
    n = 4
    c = random_circuit(n, 25, rng)
    wide = _inputs(rng, (301, 3 * n), dtype)
    theta = wide[:, ::3]  # column stride 3
    g = _inputs(rng, (n, 301), dtype).t()  # column-major
    assert not theta.is_contiguous() and not g.is_contiguous()
    expected = sp.simulate(c, theta.contiguous(), g.contiguous(), backend="torch")
    torch.testing.assert_close(sp.simulate(c, theta, g, backend="cpu"), expected, atol=TOL[dtype], rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_angles_are_reduced_exactly(cpu_isa, dtype, rng):
    # Angles far beyond the polynomial's reduction range take the library path;
    # scale 1 and offset 0 keep the angle exactly the input, so both sides agree.
    n = 3
    c = sp.Circuit(n)
    for q in range(n):
        c.h(q).ry(q, sp.param(q)).rz(q, sp.param((q + 1) % n))
    c.cx(0, 1).cz(1, 2).observe(["X", "Y", "-Z"])
    theta = torch.from_numpy(rng.uniform(-3e5, 3e5, size=(513, n))).to(dtype)
    theta[::7] = torch.from_numpy(rng.uniform(-20000, 20000, size=theta[::7].shape)).to(dtype)
    expected = sp.simulate(c, theta, backend="torch")
    torch.testing.assert_close(sp.simulate(c, theta, backend="cpu"), expected, atol=TOL[dtype] * 10, rtol=0)


def test_non_finite_inputs_propagate(cpu_isa):
    theta = torch.tensor([[float("nan"), 0.25], [0.5, float("inf")], [0.1, 0.2]])
    got = sp.simulate(sp.circuits.paper(2), theta, backend="cpu")
    assert torch.isnan(got[0, 0]) and torch.isnan(got[1, 1])
    torch.testing.assert_close(got[2], torch.sin(math.pi * theta[2]), atol=1e-6, rtol=0)


def test_states_match_reference_up_to_nothing(cpu_isa, rng):
    # A direct statevector check on a circuit with every gate kind.
    c = (
        sp.Circuit(3)
        .h(0)
        .x(1)
        .rx(2, sp.param(0))
        .ry(0, sp.grad(1, 0.5, 0.1))
        .rz(1, 0.3)
        .cx(0, 2)
        .cz(1, 2)
        .h(2)
    )
    theta, g = _inputs(rng, (9, 3), torch.float64), _inputs(rng, (9, 3), torch.float64)
    _, state = sp.simulate(c, theta, g, backend="cpu", return_state=True)
    _, reference = sp.simulate(c, theta, g, backend="torch", return_state=True)
    assert max_phase_aligned_error(state, reference) < 1e-13
    assert np.allclose(state.numpy(), reference.numpy(), atol=1e-13)


def _isa_in_fresh_process(value: str) -> subprocess.CompletedProcess:
    code = (
        "import warnings; warnings.simplefilter('always')\n"
        "from superpositional._extension import require_extension\n"
        "print(require_extension().cpu_isa())"
    )
    env = {**os.environ, "SUPERPOSITIONAL_CPU_ISA": value}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
def test_the_environment_picks_a_supported_isa(ext, isa):
    if isa not in ext.supported_cpu_isas():
        pytest.skip(f"this CPU cannot run {isa}")
    done = _isa_in_fresh_process(isa)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == isa and "Warning" not in done.stderr


def test_an_unknown_isa_in_the_environment_warns_and_keeps_the_default(ext):
    done = _isa_in_fresh_process("avx9000")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == ext.supported_cpu_isas()[0]  # the widest, as without the variable
    assert "SUPERPOSITIONAL_CPU_ISA='avx9000' ignored: no CPU kernels named 'avx9000'" in done.stderr
