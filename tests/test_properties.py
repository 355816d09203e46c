"""Property-based tests (hypothesis): random circuits, shapes, dtypes, strides and hyperparameters
against the torch reference, and random garbage into the builder, ``simulate`` and the optimizer
(docs/design.md: *The mathematics*, *Public API*, *Validation*, *Reliability*).

Every run draws fresh examples (no derandomize, no example database written into the repository);
a failure prints the falsifying example, which holds the seed of its numeric inputs, and a
``@reproduce_failure`` blob.
"""

from __future__ import annotations

import math
import operator
import os
import re
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import torch

import superpositional as sp

from unchanged import Snapshot

try:
    from hypothesis import HealthCheck, example, given, note, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("SUPERPOSITIONAL_REQUIRE_ALL") == "1":
        raise
    pytest.skip("hypothesis is not installed", allow_module_level=True)

KERNEL = "cpu"
pytestmark = pytest.mark.skipif(KERNEL not in sp.available_backends(), reason="the C++ kernel is not built")

# Example counts are sized for about 25 s in all on 2 cores; scale them for a deeper run, e.g.
# SUPERPOSITIONAL_HYPOTHESIS_SCALE=20 (a nightly job).
SCALE = float(os.environ.get("SUPERPOSITIONAL_HYPOTHESIS_SCALE", "1"))


def _examples(n: int) -> int:
    return max(1, round(n * SCALE))


COMMON = dict(
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
# simulate: fp32/fp64 as docs/design.md, *Validation*; 16-bit inputs are computed in float32 and
# rounded to the dtype, so kernel and reference may differ by one rounding of the result (one ulp below 1).
SIM_TOL = {
    torch.float32: 1e-5,
    torch.float64: 1e-12,
    torch.bfloat16: torch.finfo(torch.bfloat16).eps,
    torch.float16: torch.finfo(torch.float16).eps,
}
# The optimizer: tests/test_optimizer.py's per-dtype tolerances (states are float32 for 16-bit).
STEP_TOL = {
    torch.float32: dict(atol=2e-6, rtol=1e-5),
    torch.float64: dict(atol=1e-13, rtol=1e-12),
    torch.bfloat16: dict(atol=2e-2, rtol=2e-2),
    torch.float16: dict(atol=3e-3, rtol=3e-3),
}
# How far the kernel's expectations may be from the reference's, in the math dtype.
E_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}

GATES = ("h", "x", "rx", "ry", "rz", "cx", "cz")
SIGNED_PAULIS = ["X", "Y", "Z", "-X", "-Y", "-Z", "+X", "+Y", "+Z"]

seeds = st.integers(0, 2**32 - 1)


def _math_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# -- strategies -----------------------------------------------------------------------------------


@st.composite
def angles(draw, n: int):
    """A constant, sp.param or sp.grad angle. |angle| stays moderate (below ~16) so that rounding the
    angle itself to float32 moves an expectation far less than 1e-5; large angles have their own test."""
    kind = draw(st.sampled_from(["const", "param", "grad"]))
    offset = draw(st.floats(-2 * math.pi, 2 * math.pi))
    if kind == "const":
        return offset
    scale = draw(st.floats(-math.pi, math.pi))
    return (sp.param if kind == "param" else sp.grad)(draw(st.integers(0, n - 1)), scale=scale, offset=offset)


@st.composite
def circuits(draw, max_qubits: int = 10, max_gates: int = 24):
    n = draw(st.integers(1, max_qubits))
    c = sp.Circuit(n)
    for _ in range(draw(st.integers(0, max_gates))):
        name = draw(st.sampled_from(GATES if n > 1 else GATES[:5]))
        if name in ("cx", "cz"):
            a = draw(st.integers(0, n - 1))
            getattr(c, name)(a, (a + draw(st.integers(1, n - 1))) % n)
        elif name in ("h", "x"):
            getattr(c, name)(draw(st.integers(0, n - 1)))
        else:
            getattr(c, name)(draw(st.integers(0, n - 1)), draw(angles(n)))
    observables = draw(st.lists(st.sampled_from(SIGNED_PAULIS), min_size=n, max_size=n))
    c.observe(observables)
    assert c.observables == tuple(o.lstrip("+") for o in observables)
    return c


leading_shapes = st.one_of(
    st.just(()),
    st.tuples(st.sampled_from([0, 1, 2, 3, 7, 33])),
    st.lists(st.integers(0, 4), min_size=2, max_size=3).map(tuple),
)

LAYOUTS = ["contiguous", "transposed", "strided", "expanded", "numpy", "numpy-strided", "numpy-reversed"]


def _layout(values: torch.Tensor, layout: str):
    """``values`` ([..., n]) with the same elements in another memory layout (or as numpy)."""
    if layout == "contiguous":
        return values.clone()
    if layout == "transposed":  # the last dimension is the slowest: every stride differs
        return values.movedim(-1, 0).contiguous().movedim(0, -1)
    if layout == "strided":  # every other element of a wider buffer
        wide = torch.zeros(*values.shape[:-1], 2 * values.shape[-1], dtype=values.dtype)
        wide[..., ::2] = values
        return wide[..., ::2]
    if layout == "expanded":  # stride 0 along the first leading dimension, when all its rows agree
        if values.dim() < 2:
            return values.clone()
        return values[:1].expand_as(values)
    array = values.numpy() if values.dtype != torch.bfloat16 else None
    if array is None:
        return values.clone()
    if layout == "numpy":
        return array.copy()
    if layout == "numpy-strided":
        wide = np.zeros((*array.shape[:-1], 2 * array.shape[-1]), dtype=array.dtype)
        wide[..., 1::2] = array
        return wide[..., 1::2]
    # numpy-reversed: a view with negative strides over a reversed copy (same elements, same order)
    return np.ascontiguousarray(array[..., ::-1])[..., ::-1]


def _values(seed: int, shape: tuple, dtype: torch.dtype, layout: str, spread: float = math.pi):
    rng = np.random.default_rng(seed)
    values = torch.from_numpy(rng.uniform(-spread, spread, size=shape)).to(dtype)
    if layout == "expanded" and values.dim() >= 2:
        values = values[:1].expand_as(values).clone()
    return values


# -- simulate against the torch reference --------------------------------------------------------


@settings(max_examples=_examples(220), **COMMON)
@given(
    circuit=circuits(),
    leading=leading_shapes,
    dtype=st.sampled_from(DTYPES),
    layouts=st.tuples(st.sampled_from(LAYOUTS), st.sampled_from(LAYOUTS)),
    return_state=st.booleans(),
    seed=seeds,
)
@example(  # a numpy view with negative strides is a non-contiguous input like any other
    circuit=sp.circuits.entangled(3),
    leading=(5,),
    dtype=torch.float64,
    layouts=("numpy-reversed", "transposed"),
    return_state=True,
    seed=1,
)
@example(
    circuit=sp.circuits.attention(4),
    leading=(3, 2),
    dtype=torch.bfloat16,
    layouts=("expanded", "strided"),
    return_state=False,
    seed=2,
)
def test_simulate_matches_the_reference_for_any_shape_dtype_and_layout(
    circuit, leading, dtype, layouts, return_state, seed
):
    n = circuit.n_qubits
    shape = (*leading, n)
    theta = _values(seed, shape, dtype, layouts[0])
    g = _values(seed + 1, shape, dtype, layouts[1])
    inputs = [_layout(theta, layouts[0]), _layout(g, layouts[1])]
    before = [x.copy() if isinstance(x, np.ndarray) else x.clone() for x in inputs]
    as_numpy = any(isinstance(x, np.ndarray) for x in inputs)
    return_state = return_state and dtype in (torch.float32, torch.float64)

    expected = sp.simulate(circuit, theta, g, backend="torch", return_state=return_state)
    got = sp.simulate(circuit, *inputs, backend=KERNEL, return_state=return_state)
    contiguous = sp.simulate(circuit, theta, g, backend=KERNEL, return_state=return_state)
    if return_state:
        (expected, expected_state), (got, state), (contiguous, _) = expected, got, contiguous

    # numpy in (either input), numpy out, in the inputs' dtype.
    assert isinstance(got, np.ndarray) == as_numpy
    if as_numpy:
        got = torch.from_numpy(got)
        if return_state:
            assert isinstance(state, np.ndarray)
            state = torch.from_numpy(state)
    assert got.dtype == dtype and tuple(got.shape) == shape
    torch.testing.assert_close(got.double(), expected.double(), atol=SIM_TOL[dtype], rtol=0)
    # The layout never changes a result: same kernel, same rows, same lanes.
    assert torch.equal(got, contiguous)
    if return_state:
        assert tuple(state.shape) == (*leading, 2**n)
        torch.testing.assert_close(state, expected_state, atol=SIM_TOL[dtype], rtol=0)
    # Inputs are read, never written.
    for x, b in zip(inputs, before):
        assert np.array_equal(x, b) if isinstance(x, np.ndarray) else torch.equal(x, b)


@settings(max_examples=_examples(100), **COMMON)
@given(
    circuit=circuits(max_qubits=6), batch=st.integers(1, 40), dtype=st.sampled_from(DTYPES[:2]), seed=seeds
)
def test_non_finite_inputs_stay_in_their_row(circuit, batch, dtype, seed):
    """A NaN/Inf input poisons at most its own row: every other row matches the reference."""
    n = circuit.n_qubits
    rng = np.random.default_rng(seed)
    theta = torch.from_numpy(rng.uniform(-3, 3, size=(batch, n))).to(dtype)
    g = torch.from_numpy(rng.uniform(-3, 3, size=(batch, n))).to(dtype)
    poisoned = rng.random(batch) < 0.3
    for row in np.flatnonzero(poisoned):
        which = theta if rng.random() < 0.5 else g
        which[row, rng.integers(n)] = rng.choice([np.nan, np.inf, -np.inf])
    clean = torch.from_numpy(~poisoned)
    got = sp.simulate(circuit, theta, g, backend=KERNEL)
    expected = sp.simulate(circuit, theta, g, backend="torch")
    assert torch.isfinite(got[clean]).all()
    torch.testing.assert_close(got[clean], expected[clean], atol=SIM_TOL[dtype], rtol=0)


@settings(max_examples=_examples(100), **COMMON)
@given(
    angle=st.one_of(st.floats(-1e300, 1e300), st.floats(-1e6, 1e6)),
    gate=st.sampled_from(["rx", "ry", "rz"]),
    backend=st.sampled_from([KERNEL, "torch"]),
    dtype=st.sampled_from(DTYPES),
)
@example(angle=1e300, gate="rx", backend="torch", dtype=torch.float32)
@example(angle=-3.5e38, gate="rz", backend="torch", dtype=torch.float16)
@example(angle=1e300, gate="ry", backend=KERNEL, dtype=torch.float32)
def test_any_finite_constant_angle_the_builder_accepts_can_be_simulated(angle, gate, backend, dtype):
    """The builder accepts every finite float; every backend must then simulate it (in [-1, 1])."""
    c = getattr(sp.Circuit(1).h(0), gate)(0, angle).observe(["Y" if gate == "rz" else "X"])
    got = sp.simulate(c, torch.zeros(3, 1, dtype=dtype), backend=backend)
    assert torch.isfinite(got).all() and bool((got.abs() <= 1 + SIM_TOL[dtype]).all())


# -- the optimizer: kernel against the torch backend, and against torch.optim.AdamW ---------------

shapes = st.one_of(
    st.just(()),
    st.tuples(st.integers(0, 40)),
    st.tuples(st.integers(0, 6), st.integers(0, 13)),
    st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5)),
)


@st.composite
def hyperparameters(draw, quantum: bool = True):
    h = dict(
        lr=draw(st.one_of(st.just(0.0), st.floats(1e-5, 0.1))),
        betas=(draw(st.floats(0.0, 0.99)), draw(st.floats(0.0, 0.9999))),
        eps=draw(st.one_of(st.just(0.0), st.floats(1e-12, 1e-3))),
        weight_decay=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.5))),
        maximize=draw(st.booleans()),
    )
    if quantum:
        h["quantum_weight"] = draw(st.one_of(st.just(0.0), st.floats(-2.0, 2.0)))
        h["coverage"] = draw(st.sampled_from(["paper", "all"]))
    return h


def _make_param(values: torch.Tensor, layout: str) -> torch.nn.Parameter:
    if layout == "transposed" and values.dim() >= 2:
        return torch.nn.Parameter(values.movedim(0, -1).contiguous().movedim(-1, 0))
    if layout == "strided" and values.dim() >= 1:
        wide = torch.zeros(*values.shape[:-1], 2 * values.shape[-1], dtype=values.dtype)
        wide[..., 1::2] = values
        return torch.nn.Parameter(wide[..., 1::2])
    return torch.nn.Parameter(values.clone())


def _make_grad(values: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "transposed" and values.dim() >= 2:
        return (
            values.t().contiguous().t()
            if values.dim() == 2
            else values.movedim(0, -1).contiguous().movedim(-1, 0)
        )
    if layout == "strided" and values.dim() >= 1:
        wide = torch.zeros(*values.shape[:-1], 2 * values.shape[-1], dtype=values.dtype)
        wide[..., ::2] = values
        return wide[..., ::2]
    return values.clone()


@settings(max_examples=_examples(140), **COMMON)
@given(
    tensors=st.lists(
        st.tuples(shapes, st.sampled_from(DTYPES), st.sampled_from(["contiguous", "transposed", "strided"])),
        min_size=1,
        max_size=4,
    ),
    circuit=st.one_of(
        circuits(max_qubits=5, max_gates=12),
        st.builds(sp.circuits.paper, st.integers(1, 5)),
        st.builds(sp.circuits.entangled, st.integers(1, 5)),
    ),
    hyper=hyperparameters(),
    lr_tensor=st.booleans(),
    steps=st.integers(1, 3),
    seed=seeds,
)
def test_kernel_step_matches_the_torch_backend(tensors, circuit, hyper, lr_tensor, steps, seed):
    hyper = dict(hyper)
    rng = np.random.default_rng(seed)
    values = [torch.from_numpy(rng.normal(size=shape)).to(dtype) for shape, dtype, _ in tensors]
    ours = [_make_param(v, layout) for v, (_, _, layout) in zip(values, tensors)]
    peers = [torch.nn.Parameter(v.clone()) for v in values]
    lr = hyper["lr"] = torch.tensor(hyper["lr"]) if lr_tensor else hyper["lr"]  # one value for both
    opt = sp.SuperpositionalAdamW(ours, circuit=circuit, backend=KERNEL, **hyper)
    ref = sp.SuperpositionalAdamW(peers, circuit=circuit, backend="torch", **hyper)
    lr = float(lr)
    largest_g = 0.0
    for _ in range(steps):
        for p, q, (_, _, layout) in zip(ours, peers, tensors):
            g = torch.from_numpy(rng.normal(size=p.shape)).to(p.dtype)
            largest_g = max(largest_g, float(g.abs().max())) if g.numel() else largest_g
            p.grad, q.grad = _make_grad(g, layout), g.clone()
        opt.step()
        ref.step()
    for p, q in zip(ours, peers):
        note(f"{p.dtype} {list(p.shape)} contiguous={p.is_contiguous()}")
        math_dtype = _math_dtype(p.dtype)
        # The circuits' expectations may differ by E_TOL; their term moves p by lr*|lambda*e*g|.
        quantum = steps * lr * abs(hyper["quantum_weight"]) * largest_g * E_TOL[math_dtype]
        tol = dict(STEP_TOL[p.dtype])
        tol["atol"] += quantum
        assert p.dtype == q.dtype and p.shape == q.shape
        torch.testing.assert_close(p.detach().double(), q.detach().double(), **tol)
        a, b = opt.state[p], ref.state[q]
        assert float(a["step"]) == float(b["step"]) == steps
        for name in ("exp_avg", "exp_avg_sq"):
            assert a[name].dtype == b[name].dtype == math_dtype
            torch.testing.assert_close(a[name], b[name], **STEP_TOL[math_dtype])


@settings(max_examples=_examples(100), **COMMON)
@given(
    tensors=st.lists(st.tuples(shapes, st.sampled_from(DTYPES[:2])), min_size=1, max_size=4),
    hyper=hyperparameters(quantum=False),
    backend=st.sampled_from([KERNEL, "torch"]),
    coverage=st.sampled_from(["paper", "all"]),
    steps=st.integers(1, 4),
    seed=seeds,
)
def test_quantum_weight_zero_is_torch_adamw(tensors, hyper, backend, coverage, steps, seed):
    rng = np.random.default_rng(seed)
    values = [torch.from_numpy(rng.normal(size=shape)).to(dtype) for shape, dtype in tensors]
    ours = [torch.nn.Parameter(v.clone()) for v in values]
    theirs = [torch.nn.Parameter(v.clone()) for v in values]
    opt = sp.SuperpositionalAdamW(
        ours,
        quantum_weight=0.0,
        circuit=sp.circuits.entangled(3),
        coverage=coverage,
        backend=backend,
        **hyper,
    )
    adamw = torch.optim.AdamW(theirs, **hyper)
    for _ in range(steps):
        for p, q in zip(ours, theirs):
            g = torch.from_numpy(rng.normal(size=p.shape)).to(p.dtype)
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        adamw.step()
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p.detach(), q.detach(), **STEP_TOL[p.dtype])
        for name in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(opt.state[p][name], adamw.state[q][name], **STEP_TOL[p.dtype])
        assert float(opt.state[p]["step"]) == float(adamw.state[q]["step"]) == steps


# -- garbage in: a clear error, and nothing changed ------------------------------------------------

SPECIAL = [
    np.int64(1),
    np.int32(-1),
    np.float64(0.5),
    np.float32("nan"),
    np.float64("inf"),
    np.array([1.0, 2.0]),
    np.array(0.25),
    torch.tensor(2),
    torch.tensor(0.5),
    torch.tensor([1.0, 2.0]),
    torch.tensor(float("nan")),
    object(),
    math.pi,
    Fraction(1, 3),
    Decimal("0.1"),
    Decimal("NaN"),
    sp.param(0),
    sp.grad(1, scale=2.0),
    sp.param(9),
    "0.5",
    "Z",
    b"1",
    ["Z"],
    ("X", "-Y"),
    {"Z": 1},
    sp.Circuit,
]

garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.complex_numbers(max_magnitude=10),
    st.text(alphabet="+-XYZxyz01. ", max_size=3),
    st.lists(st.integers(-1, 3), max_size=3),
    st.sampled_from(SPECIAL),
)


def _as_index(x):
    """The integer a builder must accept for ``x``, or None where it must refuse it."""
    if isinstance(x, bool):
        return None
    try:
        return operator.index(x)
    except TypeError:
        return None


def _as_real(x):
    """The finite float a builder must accept for ``x``, or None where it must refuse it.

    Real numbers only: not a bool, not a string (the builder refuses both for an angle, and
    ``sp.param``'s scale and offset are angles' parts), not complex, finite.
    """
    if isinstance(x, (bool, str, bytes)) or not (isinstance(x, (int, float)) or hasattr(x, "__float__")):
        return None
    try:
        value = float(x)
    except (TypeError, ValueError, RuntimeError):
        return None
    return value if math.isfinite(value) else None


def _state(c: sp.Circuit):
    return (c.n_qubits, c.gates, c.observables, c.frozen)


def _expect_refusal(call, keywords):
    """``call`` must raise TypeError or ValueError whose message names the problem."""
    try:
        call()
    except (TypeError, ValueError) as error:
        message = str(error)
        assert any(k in message for k in keywords), f"unclear message: {type(error).__name__}: {message!r}"
        return error
    raise AssertionError("bad input was accepted")


def _gate_args(draw, n):
    """Arguments for one builder call: each valid or garbage."""
    qubit = st.one_of(st.integers(0, n - 1), garbage)
    angle = st.one_of(angles(n), garbage)
    name = draw(st.sampled_from([*GATES, "observe"]))
    if name in ("h", "x"):
        return name, (draw(qubit),)
    if name in ("rx", "ry", "rz"):
        return name, (draw(qubit), draw(angle))
    if name in ("cx", "cz"):
        return name, (draw(qubit), draw(qubit))
    observables = st.one_of(
        st.lists(st.sampled_from(SIGNED_PAULIS), min_size=n, max_size=n),
        st.lists(
            st.one_of(st.sampled_from(SIGNED_PAULIS), st.text(alphabet="+-XYZxyzW ", max_size=3)),
            max_size=n + 1,
        ),
        garbage,
    )
    return name, (draw(observables),)


def _valid(name, args, n):
    """The gate the builder must append (or the observables it must set), or None if it must refuse."""
    if name == "observe":
        (obs,) = args
        if isinstance(obs, (str, bytes)):
            return None
        try:  # any iterable of one observable per qubit
            obs = list(obs)
        except TypeError:
            return None
        if len(obs) != n:
            return None
        if not all(isinstance(o, str) and re.fullmatch(r"[+-]?[XYZ]", o) for o in obs):
            return None
        return tuple(o.lstrip("+") for o in obs)
    qubits = [_as_index(q) for q in args[: 1 if name in ("h", "x", "rx", "ry", "rz") else 2]]
    if any(q is None or not 0 <= q < n for q in qubits) or len(set(qubits)) != len(qubits):
        return None
    if name in ("rx", "ry", "rz"):
        angle = args[1]
        if isinstance(angle, sp.Input):
            return sp.Gate(name, tuple(qubits), angle) if angle.index < n else None
        value = _as_real(angle)
        return None if value is None else sp.Gate(name, tuple(qubits), value)
    return sp.Gate(name, tuple(qubits))


BUILDER_WORDS = (
    "qubit",
    "angle",
    "input index",
    "observ",
    "integer",
    "finite",
    "real number",
    "two different",
)


@settings(max_examples=_examples(600), **COMMON)
@given(data=st.data())
def test_garbage_into_the_builder_is_refused_clearly_and_changes_nothing(data):
    n_arg = data.draw(st.one_of(st.integers(1, 10), garbage), label="n_qubits")
    n = _as_index(n_arg)
    if n is None or not 1 <= n <= 10:
        _expect_refusal(lambda: sp.Circuit(n_arg), ("qubits", "n_qubits", "integer"))
        return
    c = sp.Circuit(n_arg)
    assert c.n_qubits == n
    for _ in range(data.draw(st.integers(1, 8), label="calls")):
        name, args = _gate_args(data.draw, n)
        note(f"{name}{args!r}")
        before = _state(c)
        expected = _valid(name, args, n)
        if expected is None:
            _expect_refusal(lambda: getattr(c, name)(*args), BUILDER_WORDS)  # noqa: B023
            assert _state(c) == before
            continue
        assert getattr(c, name)(*args) is c
        if name == "observe":
            assert c.observables == expected and c.gates == before[1]
        else:
            assert c.gates == (*before[1], expected) and c.observables == before[2]


@settings(max_examples=_examples(400), **COMMON)
@given(k=st.one_of(st.integers(0, 3), garbage), scale=st.one_of(st.floats(-3, 3), garbage), offset=garbage)
@example(k=0, scale="2", offset=0.0)
@example(k=1, scale=1.0, offset=True)
def test_garbage_into_param_and_grad_is_refused_clearly(k, scale, offset):
    for make in (sp.param, sp.grad):
        index, s, o = _as_index(k), _as_real(scale), _as_real(offset)
        if index is None or index < 0 or s is None or o is None:
            _expect_refusal(lambda: make(k, scale, offset), ("index", "scale", "offset"))  # noqa: B023
            continue
        angle = make(k, scale, offset)
        assert (angle.index, angle.scale, angle.offset) == (index, s, o)


@settings(max_examples=_examples(80), **COMMON)
@given(circuit=circuits(max_qubits=4, max_gates=6), name_args=st.data())
def test_a_used_circuit_refuses_every_change(circuit, name_args):
    sp.simulate(circuit, torch.zeros(1, circuit.n_qubits), torch.zeros(1, circuit.n_qubits), backend=KERNEL)
    before = _state(circuit)
    for _ in range(3):
        name, args = _gate_args(name_args.draw, circuit.n_qubits)
        with pytest.raises(RuntimeError, match=r"immutable; call \.copy\(\)"):
            getattr(circuit, name)(*args)
        assert _state(circuit) == before
    copy = circuit.copy()
    assert copy == circuit and not copy.frozen


simulate_inputs = st.one_of(
    garbage,
    st.sampled_from(
        [
            torch.zeros(2, 3, dtype=torch.int64),
            torch.zeros(2, 3, dtype=torch.complex64),
            torch.zeros(2, 3, dtype=torch.bool),
            torch.zeros(2, 5),
            torch.zeros(3),
            torch.tensor(1.0),
            np.zeros((2, 3), dtype=np.int32),
            np.zeros((2, 3), dtype=np.complex128),
            torch.zeros(2, 3).to_sparse(),
            [[0.1, 0.2, 0.3]],
        ]
    ),
)


@settings(max_examples=_examples(400), **COMMON)
@given(
    params=st.one_of(st.just(torch.zeros(2, 3)), simulate_inputs),
    grads=st.one_of(st.none(), st.just(torch.zeros(2, 3)), simulate_inputs),
    backend=st.one_of(st.sampled_from(["auto", KERNEL, "torch"]), garbage),
)
@example(params=torch.zeros(2, 3).to_sparse(), grads=torch.zeros(2, 3), backend=KERNEL)
def test_garbage_into_simulate_is_refused_clearly_and_changes_nothing(params, grads, backend):
    def ok(x):
        # [..., 3] rows of the 3-qubit circuit: a batch of two, or one row alone.
        return (
            isinstance(x, torch.Tensor)
            and x.dtype == torch.float32
            and x.shape in ((2, 3), (3,))
            and x.layout == torch.strided
        )

    circuit = sp.circuits.entangled(3).copy()
    valid_backend = isinstance(backend, str) and backend in ("auto", KERNEL, "torch")
    if ok(params) and ok(grads) and params.shape == grads.shape and valid_backend:
        assert sp.simulate(circuit, params, grads, backend=backend).shape == params.shape
        return
    words = ("params", "grads", "backend", "shape", "dtype", "floating-point", "Tensor", "reads gradients")
    _expect_refusal(lambda: sp.simulate(circuit, params, grads, backend=backend), words)
    assert not circuit.frozen  # a refused call does not even freeze the circuit


NUMERIC = {"lr": 0.0, "eps": 0.0, "weight_decay": 0.0, "quantum_weight": None}


def _valid_option(key, value):
    """Whether SuperpositionalAdamW must accept ``value`` for ``key`` (torch.optim.AdamW's rules)."""
    if key in NUMERIC:
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            return False
        if isinstance(value, (str, bytes)) or not (
            isinstance(value, (int, float)) or hasattr(value, "__float__")
        ):
            return False
        try:
            number = float(value)
        except (TypeError, ValueError, RuntimeError):
            return False
        return math.isfinite(number) and (NUMERIC[key] is None or number >= NUMERIC[key])
    if key == "betas":
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            return False
        return all(_valid_option("quantum_weight", b) and 0.0 <= float(b) < 1.0 for b in value)
    if key == "coverage":
        return isinstance(value, str) and value in ("paper", "all")
    if key == "circuit":
        return isinstance(value, sp.Circuit)
    if key == "backend":
        return isinstance(value, str) and value in ("auto", "cpu", "torch")
    if key == "maximize":
        return isinstance(value, bool)
    if key == "amsgrad":  # a flag that now selects a variant: a bool, as maximize
        return isinstance(value, bool)
    raise AssertionError(key)


OPTIONS = [
    "lr",
    "betas",
    "eps",
    "weight_decay",
    "quantum_weight",
    "coverage",
    "circuit",
    "backend",
    "maximize",
    "amsgrad",
]
option_values = st.one_of(
    garbage,
    st.tuples(st.one_of(st.floats(0, 0.999), garbage), st.one_of(st.floats(0, 0.999), garbage)),
    st.sampled_from(
        [torch.tensor([1e-3, 2e-3]), torch.tensor([]), np.array([0.9, 0.99]), "paper", "all", "cpu"]
    ),
    st.builds(sp.circuits.paper, st.integers(1, 4)),
)


@settings(max_examples=_examples(400), **COMMON)
@given(
    key=st.sampled_from(OPTIONS), value=option_values, when=st.sampled_from(["construct", "group", "later"])
)
@example(key="betas", value=(None, 0.9), when="construct")
@example(key="betas", value=(0.9, "0.99"), when="later")
@example(key="lr", value="1e-3", when="construct")
@example(key="coverage", value=np.array([0.9, 0.99]), when="group")
@example(key="amsgrad", value=torch.tensor([1.0, 2.0]), when="later")
def test_garbage_options_are_refused_clearly_and_change_nothing(key, value, when):
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(4, 3))
    b = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    valid = _valid_option(key, value) or (when == "construct" and key == "circuit" and value is None)
    if when == "construct" and key == "betas" and valid:  # AdamW's constructor: two floats or two tensors
        valid = all(isinstance(b, float) for b in value) or all(isinstance(b, torch.Tensor) for b in value)
    note(f"valid={valid}")
    if when == "construct":
        if valid:
            sp.SuperpositionalAdamW([a], **{key: value})
        else:
            _expect_refusal(lambda: sp.SuperpositionalAdamW([a], **{key: value}), (key,))
        return
    opt = sp.SuperpositionalAdamW([{"params": [a]}], quantum_weight=0.3, coverage="all")
    a.grad, b.grad = torch.randn(4, 3), torch.randn(5, dtype=torch.float64)
    opt.step()
    a.grad = torch.randn(4, 3)
    groups_before = len(opt.param_groups)
    if when == "group":
        if valid:
            opt.add_param_group({"params": [b], key: value})
            opt.step()
        else:
            _expect_refusal(lambda: opt.add_param_group({"params": [b], key: value}), (key,))
            assert len(opt.param_groups) == groups_before
        return
    opt.add_param_group({"params": [b]})
    opt.param_groups[1][key] = value  # as a scheduler or a user would, between steps
    snapshot = Snapshot(opt)
    if valid:
        opt.step()
    else:
        _expect_refusal(opt.step, (key,))
        snapshot.assert_unchanged()


param_garbage = st.one_of(
    garbage,
    st.sampled_from(
        [
            torch.zeros(3, dtype=torch.int64),
            torch.zeros(3, dtype=torch.bool),
            torch.zeros(3, dtype=torch.uint8),
        ]
    ),
)


@settings(max_examples=_examples(200), **COMMON)
@given(extra=st.lists(param_garbage, min_size=1, max_size=3))
@example(extra=[torch.tensor(float("nan")), torch.zeros(3, dtype=torch.int64)])  # NaN is unchanged NaN
def test_garbage_params_are_refused_clearly_and_change_nothing(extra):
    extra = [x.clone() if isinstance(x, torch.Tensor) else x for x in extra]  # never step a shared object
    good = torch.nn.Parameter(torch.randn(6))
    try:
        opt = sp.SuperpositionalAdamW([good, *extra])
    except (TypeError, ValueError) as error:  # torch.optim's own checks, with clear messages of their own
        assert re.search(r"Tensor|iterable|leaf|param", str(error)), str(error)
        return
    good.grad = torch.randn(6)
    for t in extra:  # tensors torch.optim let in: give them a gradient of their own kind
        t.grad = torch.zeros_like(t)
    if all(t.dtype in DTYPES for t in extra):
        opt.step()  # floating-point tensors are parameters like any other
        return
    snapshot = Snapshot(opt)
    _expect_refusal(opt.step, ("float32, float64, bfloat16, float16, complex64 or complex128",))
    snapshot.assert_unchanged()


# -- a failed step changes nothing, whichever group, dtype and tensor holds the bad input -------------

BAD_INPUTS = {
    "parameter data of another shape": lambda opt, p: setattr(
        p, "data", torch.zeros(p.numel() + 1, dtype=p.dtype)
    ),
    "state of another dtype": lambda opt, p: opt.state[p].update(exp_avg=opt.state[p]["exp_avg"].half()),
    "state of another shape": lambda opt, p: opt.state[p].update(
        exp_avg_sq=opt.state[p]["exp_avg_sq"][..., :1]
    ),
    "state on the meta device": lambda opt, p: opt.state[p].update(
        exp_avg=torch.empty_like(p, device="meta")
    ),
    "state that is a list": lambda opt, p: opt.state[p].update(exp_avg_sq=[0.0]),
    "step of another dtype": lambda opt, p: opt.state[p].update(step=opt.state[p]["step"].double()),
    "sparse gradient": lambda opt, p: setattr(p, "grad", p.grad.to_sparse()),
}


@settings(max_examples=_examples(60), **COMMON)
@given(
    dtypes=st.lists(
        st.lists(st.sampled_from([torch.float32, torch.float64, torch.bfloat16]), min_size=1, max_size=3),
        min_size=1,
        max_size=3,
    ),
    where=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    bad=st.sampled_from(sorted(BAD_INPUTS)),
    backend=st.sampled_from(["cpu", "torch"]),
    coverage=st.sampled_from(["paper", "all"]),
)
def test_a_step_refused_anywhere_changes_nothing_anywhere(dtypes, where, bad, backend, coverage):
    generator = torch.Generator().manual_seed(0)
    groups = [
        [torch.nn.Parameter(torch.randn(3, 5, generator=generator).to(dtype)) for dtype in group]
        for group in dtypes
    ]
    opt = sp.SuperpositionalAdamW(
        [{"params": group} for group in groups], backend=backend, coverage=coverage, quantum_weight=0.5
    )
    for _ in range(2):
        for p in (p for group in groups for p in group):
            p.grad = torch.randn(p.shape, generator=generator).to(p.dtype)
        opt.step()
    group = groups[where[0] % len(groups)]
    target = group[where[1] % len(group)]
    BAD_INPUTS[bad](opt, target)
    snapshot = Snapshot(opt)
    with pytest.raises((RuntimeError, ValueError, TypeError)):
        opt.step()
    snapshot.assert_unchanged()
