"""Bad input, complete (docs/design.md, *Reliability*).

Every case of section 8's list gets an error that names the problem, and the failed call changes
nothing: parameters, gradients, optimizer state (step counters included) and param-group options
are compared bit for bit with a snapshot taken before it. The optimizer cases run with the bad
input in the *last* param group, after earlier groups that a careless step would already have
updated, on the kernel and on the torch backend. Non-contiguous tensors work; non-finite
gradients follow ``torch.amp.GradScaler`` (the step is skipped) and, without a scaler, torch's
AdamW. ``tests/test_optimizer_errors.py`` and ``tests/test_circuit.py`` hold the first cases;
this file completes them.
"""

from __future__ import annotations

import copy
import math
import pickle
import warnings

import numpy as np
import pytest
import torch

import superpositional as sp

from unchanged import Snapshot

BACKENDS = [b for b in ("cpu", "torch") if b in sp.available_backends()]
META_WARNING = "ignore:no compiled (step|kernel) for meta:RuntimeWarning"


# -- helpers -----------------------------------------------------------------------------------------


def _trained(backend: str, seed: int = 0) -> tuple[sp.SuperpositionalAdamW, list[torch.nn.Parameter]]:
    """An optimizer with state: two good groups (fp32 + bf16, fp64), stepped twice, fresh gradients."""
    gen = torch.Generator().manual_seed(seed)
    params = [
        torch.nn.Parameter(torch.randn(4, 3, generator=gen)),
        torch.nn.Parameter(torch.randn(5, generator=gen).bfloat16()),
        torch.nn.Parameter(torch.randn(7, generator=gen, dtype=torch.float64)),
    ]
    opt = sp.SuperpositionalAdamW(
        [{"params": params[:2]}, {"params": params[2:], "circuit": sp.circuits.entangled(3)}],
        lr=1e-2,
        quantum_weight=0.4,
        coverage="all",
        backend=backend,
    )
    for step in range(3):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen).to(p.dtype)
        if step < 2:
            opt.step()
    return opt, params


def _step_fails(opt, error, match):
    snapshot = Snapshot(opt)
    with pytest.raises(error, match=match):
        opt.step()
    snapshot.assert_unchanged()


def _still_steps_like_a_twin(opt, params, backend):
    """After the refused call the optimizer goes on exactly as an untouched twin does."""
    twin_of = {p: torch.nn.Parameter(p.detach().clone()) for g in opt.param_groups for p in g["params"]}
    groups = [
        {**{k: v for k, v in g.items() if k != "params"}, "params": [twin_of[p] for p in g["params"]]}
        for g in opt.param_groups
    ]
    twin = sp.SuperpositionalAdamW(groups, backend=backend)
    twin.load_state_dict(copy.deepcopy(opt.state_dict()))
    for p in params:
        twin_of[p].grad = p.grad.clone()
    opt.step()
    twin.step()
    for p in params:
        assert torch.equal(p.detach(), twin_of[p].detach())


# -- wrong dtype ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.int8, torch.int64, torch.uint8, torch.bool])
def test_wrong_parameter_dtype_in_the_last_group_changes_nothing(backend, dtype):
    opt, params = _trained(backend)
    bad = torch.zeros(6, dtype=dtype)  # torch.optim takes any leaf tensor; the step must refuse it
    bad.grad = torch.ones(6, dtype=dtype)
    opt.add_param_group({"params": [bad]})
    message = "parameters must be float32, float64, bfloat16, float16, complex64 or complex128"
    _step_fails(opt, TypeError, rf"{message}, got {dtype}")
    opt.param_groups[-1]["params"] = []  # without the bad group, the optimizer goes on as before
    _still_steps_like_a_twin(opt, params, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("make_grad", "what"),
    [
        (
            lambda p: torch.randn(p.shape, dtype=torch.float64),
            r"torch\.float64 \[7\] for a torch\.float32 \[7\]",
        ),
        (lambda p: torch.randn(8), r"torch\.float32 \[8\] for a torch\.float32 \[7\]"),
    ],
    ids=["dtype", "shape"],
)
def test_gradient_that_does_not_match_its_parameter_changes_nothing(backend, make_grad, what):
    opt, params = _trained(backend)
    bad = torch.nn.Parameter(torch.randn(7))
    opt.add_param_group({"params": [bad]})
    bad.grad = torch.zeros(7)
    bad.grad.data = make_grad(bad)  # torch checks `p.grad = ...`, not this back door
    _step_fails(opt, ValueError, rf"a gradient must match its parameter: got {what} parameter")
    opt.param_groups[-1]["params"] = []
    _still_steps_like_a_twin(opt, params, backend)


@pytest.mark.parametrize(
    ("params", "grads", "error", "match"),
    [
        (torch.zeros(2, 3, dtype=torch.int32), None, TypeError, "params must be a floating-point tensor"),
        (
            torch.zeros(2, 3, dtype=torch.complex64),
            None,
            TypeError,
            "floating-point tensor, got torch.complex64",
        ),
        (np.zeros((2, 3), dtype=np.int64), None, TypeError, "floating-point tensor, got torch.int64"),
        (torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64), ValueError, "same dtype"),
        (torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool), ValueError, "same dtype"),
    ],
)
def test_simulate_refuses_wrong_dtypes_and_changes_nothing(params, grads, error, match):
    circuit = sp.circuits.entangled(3).copy() if grads is not None else sp.circuits.paper(3).copy()
    before = [x.copy() if isinstance(x, np.ndarray) else x.clone() for x in (params, grads) if x is not None]
    for backend in ("auto", *BACKENDS):
        with pytest.raises(error, match=match):
            sp.simulate(circuit, params, grads, backend=backend)
    after = [x for x in (params, grads) if x is not None]
    assert all(
        np.array_equal(a, b) if isinstance(a, np.ndarray) else torch.equal(a, b)
        for a, b in zip(after, before)
    )
    assert not circuit.frozen  # not even frozen: the circuit can still be edited


# -- wrong device --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_group_on_a_device_its_backend_cannot_step_changes_nothing(backend):
    opt, params = _trained(backend)
    meta = torch.nn.Parameter(torch.empty(5, device="meta"))
    meta.grad = torch.empty(5, device="meta")
    opt.add_param_group({"params": [meta], "backend": "cpu"})
    _step_fails(opt, ValueError, "backend 'cpu' runs on CPU tensors, got tensors on meta")
    opt.param_groups[-1]["params"] = []  # without the bad group, the optimizer goes on as before
    _still_steps_like_a_twin(opt, params, backend)


@pytest.mark.filterwarnings(META_WARNING)
@pytest.mark.parametrize("group_backend", ["auto", "torch"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_parameters_without_data_are_refused_before_any_group_changes(backend, group_backend):
    # Meta tensors (a model built under `torch.device("meta")` and never materialised) hold no values:
    # no backend can step them, and the refusal must come before the earlier groups are updated.
    opt, _ = _trained(backend)
    meta = torch.nn.Parameter(torch.empty(5, device="meta"))
    meta.grad = torch.empty(5, device="meta")
    opt.add_param_group({"params": [meta], "backend": group_backend})
    _step_fails(opt, RuntimeError, "meta")


def test_simulate_refuses_a_kernel_for_another_device_and_changes_nothing():
    circuit = sp.circuits.paper(3).copy()
    with pytest.raises(ValueError, match="backend 'cpu' runs on CPU tensors, got tensors on meta"):
        sp.simulate(circuit, torch.empty(2, 3, device="meta"), backend="cpu")
    assert not circuit.frozen


# -- sparse gradients ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_gradient_in_the_last_group_changes_nothing(backend):
    opt, params = _trained(backend)
    bad = torch.nn.Parameter(torch.randn(3, 4))
    opt.add_param_group({"params": [bad]})
    dense = torch.randn(3, 4)
    bad.grad = dense.to_sparse()
    _step_fails(opt, RuntimeError, "SuperpositionalAdamW does not support sparse gradients")
    bad.grad = None  # the gradient made dense again (here: dropped), the optimizer goes on as before
    _still_steps_like_a_twin(opt, params, backend)


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_simulate_refuses_sparse_inputs_clearly(backend):
    circuit = sp.circuits.entangled(3).copy()
    theta = torch.randn(4, 3)
    for params, grads, name in [(theta.to_sparse(), theta, "params"), (theta, theta.to_sparse(), "grads")]:
        with pytest.raises(TypeError, match=rf"{name} must be a dense tensor"):
            sp.simulate(circuit, params, grads, backend=backend)
    assert not circuit.frozen


# -- mixed devices in one call -------------------------------------------------------------------------


@pytest.mark.filterwarnings(META_WARNING)
@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_devices_in_one_group_change_nothing(backend):
    opt, _ = _trained(backend)
    cpu = torch.nn.Parameter(torch.randn(3))
    meta = torch.nn.Parameter(torch.empty(3, device="meta"))
    cpu.grad, meta.grad = torch.randn(3), torch.empty(3, device="meta")
    opt.add_param_group({"params": [cpu, meta]})
    _step_fails(opt, RuntimeError, r"must share one device, got \['cpu', 'meta'\]")


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_simulate_refuses_mixed_devices(backend):
    circuit = sp.circuits.entangled(2).copy()
    with pytest.raises(ValueError, match="params and grads must be on the same device, got cpu and meta"):
        sp.simulate(circuit, torch.zeros(3, 2), torch.zeros(3, 2, device="meta"), backend=backend)
    assert not circuit.frozen


# -- non-finite hyperparameters ------------------------------------------------------------------------

NON_FINITE = [float("nan"), float("inf"), float("-inf")]


def _set_option(group, key, value):
    if key.startswith("betas"):
        betas = list(group["betas"])
        betas[int(key[-2])] = value
        group["betas"] = tuple(betas)
    elif key == "lr (tensor)":
        group["lr"] = torch.tensor(value)
    else:
        group[key] = value


# torch.optim.AdamW's words first, where AdamW refuses the value too.
OPTION_MESSAGES = {
    "lr": "^Invalid learning rate: ",
    "lr (tensor)": "^Invalid learning rate: ",
    "eps": "^Invalid epsilon value: ",
    "weight_decay": "^Invalid weight_decay value: ",
    "quantum_weight": "quantum_weight must be finite",
    "betas[0]": "^Invalid beta parameter at index 0: ",
    "betas[1]": "^Invalid beta parameter at index 1: ",
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", NON_FINITE, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("key", list(OPTION_MESSAGES))
def test_non_finite_option_set_between_steps_changes_nothing(backend, key, value):
    # As a scheduler or a user would set it, in the last group, after the other groups are good.
    opt, _ = _trained(backend)
    _set_option(opt.param_groups[-1], key, value)
    _step_fails(opt, ValueError, OPTION_MESSAGES[key])


@pytest.mark.parametrize("value", NON_FINITE, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("key", list(OPTION_MESSAGES))
def test_non_finite_option_in_a_new_group_changes_nothing(key, value):
    opt, _ = _trained("cpu")
    group = {"params": [torch.nn.Parameter(torch.randn(3))], "lr": 1e-3, "betas": (0.9, 0.999)}
    _set_option(group, key, value)
    snapshot = Snapshot(opt)
    with pytest.raises(ValueError, match=OPTION_MESSAGES[key]):
        opt.add_param_group(group)
    snapshot.assert_unchanged()


@pytest.mark.parametrize("value", NON_FINITE, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("key", list(OPTION_MESSAGES))
def test_non_finite_option_in_a_checkpoint_changes_nothing(key, value):
    opt, _ = _trained("cpu")
    state_dict = copy.deepcopy(opt.state_dict())
    _set_option(state_dict["param_groups"][-1], key, value)
    snapshot = Snapshot(opt)
    with pytest.raises(ValueError, match=OPTION_MESSAGES[key]):
        opt.load_state_dict(state_dict)
    snapshot.assert_unchanged()


# -- qubit index out of range, more than 10 qubits -----------------------------------------------------

OUT_OF_RANGE = [
    ("h", (3,), "qubit index 3 out of range for a 3-qubit circuit"),
    ("x", (-1,), "qubit index -1 out of range"),
    ("rx", (7, 0.1), "qubit index 7 out of range"),
    ("ry", (0, sp.param(3)), "ry: input index 3 out of range for a 3-qubit circuit"),
    ("rz", (1, sp.grad(5, scale=2.0)), "rz: input index 5 out of range"),
    ("cx", (0, 3), "qubit index 3 out of range"),
    ("cx", (10, 1), "qubit index 10 out of range"),
    ("cz", (2, -4), "qubit index -4 out of range"),
    ("cz", (2**64, 0), "out of range"),
]


@pytest.mark.parametrize(("method", "args", "match"), OUT_OF_RANGE)
def test_qubit_or_input_index_out_of_range_changes_nothing(method, args, match):
    c = sp.Circuit(3).h(0).ry(1, sp.param(1)).cx(0, 2).observe(["X", "-Y", "Z"])
    before = (c.gates, c.observables, c.frozen)
    with pytest.raises(ValueError, match=match):
        getattr(c, method)(*args)
    assert (c.gates, c.observables, c.frozen) == before
    assert sp.simulate(c, torch.zeros(1, 3), backend="torch").shape == (1, 3)  # and it still works


@pytest.mark.parametrize("n", [11, 12, 64, 2**31])
def test_more_than_ten_qubits_is_refused_everywhere(n):
    with pytest.raises(ValueError, match=f"a circuit has 1 to 10 qubits, got {n}"):
        sp.Circuit(n)
    for preset in (sp.circuits.paper, sp.circuits.entangled, sp.circuits.attention):
        with pytest.raises(ValueError, match=f"a preset has 1 to 10 qubits, got {n}"):
            preset(n)


def _unpickled(circuit: sp.Circuit, **changes) -> sp.Circuit:
    """``circuit`` after a pickle round trip of a damaged state (a hand-edited or corrupt checkpoint)."""
    state = {**circuit.__getstate__(), **changes}
    damaged = sp.Circuit.__new__(sp.Circuit)
    damaged.__setstate__(state)
    return damaged


DAMAGED = [
    (dict(n_qubits=11, observables=("Z",) * 11), "1 to 10 qubits"),
    (dict(observables=("Z", "X")), "one observable per qubit"),
    (dict(observables=("Z", "X", "W")), "observable of qubit 2"),
    (dict(gates=[sp.Gate("h", (3,))]), "qubit index 3 out of range"),
    (dict(gates=[sp.Gate("cx", (0, 0))]), "two different qubits"),
    (dict(gates=[sp.Gate("ry", (0,), sp.param(4))]), "input index 4 out of range"),
    (dict(gates=[sp.Gate("ry", (0,), float("nan"))]), "finite"),
]


@pytest.mark.parametrize(("changes", "match"), DAMAGED)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_damaged_pickled_circuit_is_refused_clearly_by_simulate(backend, changes, match):
    # The builder refuses all of these; a circuit can still arrive so from a pickle (a checkpoint's
    # param group holds its circuit). Refused when unpickled, or at the latest when used.
    with pytest.raises(ValueError, match=match):
        sp.simulate(_unpickled(sp.circuits.paper(3), **changes), torch.zeros(2, 3), backend=backend)


@pytest.mark.parametrize(("changes", "match"), DAMAGED)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_checkpoint_with_a_damaged_circuit_changes_nothing(backend, changes, match):
    # The last group's circuit in a checkpoint is damaged: refused when torch.load unpickles it, or
    # at the latest by load_state_dict or the next step, and nothing has changed then.
    opt, _ = _trained(backend)
    state_dict = pickle.loads(pickle.dumps(opt.state_dict()))  # as torch.save / torch.load would
    snapshot = Snapshot(opt)
    with pytest.raises(ValueError, match=match):
        state_dict["param_groups"][-1]["circuit"] = _unpickled(sp.circuits.paper(3), **changes)
        opt.load_state_dict(state_dict)
        opt.step()
    snapshot.assert_unchanged()


# -- observables that do not match the qubits ----------------------------------------------------------


@pytest.mark.parametrize(
    "observables",
    [["Z"], ["Z", "X", "Y", "Z"], [], ["Z", "X", "Q"], ["Z", "X", "ZZ"], ["Z", "X", None], ["Z", "X", "-"]],
)
def test_observables_that_do_not_match_the_qubits_change_nothing(observables):
    c = sp.Circuit(3).h(0).observe(["X", "-Y", "Z"])
    before = (c.gates, c.observables)
    with pytest.raises(ValueError, match=r"one observable per qubit \(3\), got|observable of qubit 2"):
        c.observe(observables)
    assert (c.gates, c.observables) == before
    with pytest.raises(ValueError, match=r"one observable per qubit \(3\), got 1"):
        sp.circuits.entangled(3, observables=["Z"])


@pytest.mark.parametrize("observables", [None, 3, 1.5, object()])
def test_observe_without_a_sequence_names_the_problem(observables):
    c = sp.Circuit(2)
    with pytest.raises(TypeError, match=r"observe\(\) takes one observable per qubit"):
        c.observe(observables)
    assert c.observables == ("Z", "Z")


# -- a state_dict of the wrong shape -------------------------------------------------------------------


def _wrong(state_dict, index, name, value):
    state_dict["state"][index][name] = value
    return state_dict


WRONG_STATE = [
    (
        2,
        "exp_avg_sq",
        lambda: torch.zeros(8, dtype=torch.float64),
        r"exp_avg_sq of parameter 2 has shape \[8\]",
    ),
    (0, "exp_avg_sq", lambda: torch.zeros(3, 4), r"exp_avg_sq of parameter 0 has shape \[3, 4\]"),
    (1, "exp_avg", lambda: torch.zeros(()), r"exp_avg of parameter 1 has shape \[\]"),
    (
        2,
        "exp_avg",
        lambda: torch.zeros(1, 7, dtype=torch.float64),
        r"exp_avg of parameter 2 has shape \[1, 7\]",
    ),
    (2, "step", lambda: torch.tensor([2.0, 2.0]), r"step of parameter 2"),
    (0, "step", lambda: torch.zeros(0), r"step of parameter 0"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("index", "name", "value", "match"), WRONG_STATE)
def test_state_dict_of_the_wrong_shape_changes_nothing(backend, index, name, value, match):
    opt, params = _trained(backend)
    state_dict = _wrong(copy.deepcopy(opt.state_dict()), index, name, value())
    snapshot = Snapshot(opt)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(state_dict)
    snapshot.assert_unchanged()
    _still_steps_like_a_twin(opt, params, backend)


def test_state_dict_for_a_zero_dim_parameter_checks_its_shape():
    p = torch.nn.Parameter(torch.tensor(0.5))
    opt = sp.SuperpositionalAdamW([p], quantum_weight=0.2)
    p.grad = torch.tensor(0.25)
    opt.step()
    state_dict = copy.deepcopy(opt.state_dict())
    state_dict["state"][0]["exp_avg"] = torch.zeros(1)
    snapshot = Snapshot(opt)
    with pytest.raises(
        ValueError, match=r"exp_avg of parameter 0 has shape \[1\], but the parameter has shape \[\]"
    ):
        opt.load_state_dict(state_dict)
    snapshot.assert_unchanged()


# -- non-contiguous tensors work -----------------------------------------------------------------------


def _views(t: torch.Tensor) -> dict[str, torch.Tensor]:
    """Non-contiguous tensors holding the values of ``t`` (2-D)."""
    wide = torch.zeros(t.shape[0], 3 * t.shape[1], dtype=t.dtype)
    wide[:, 1::3] = t
    return {"transposed": t.t().contiguous().t(), "strided": wide[:, 1::3]}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("layout", ["transposed", "strided"])
def test_non_contiguous_parameters_and_gradients_step_as_contiguous_ones(backend, dtype, layout):
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(6, 11, generator=gen).to(dtype)
    view = _views(base)[layout]
    assert not view.is_contiguous()
    p, q = torch.nn.Parameter(view), torch.nn.Parameter(base.clone())
    kwargs = dict(
        lr=1e-2, quantum_weight=0.5, circuit=sp.circuits.entangled(4), coverage="all", backend=backend
    )
    opt_p, opt_q = sp.SuperpositionalAdamW([p], **kwargs), sp.SuperpositionalAdamW([q], **kwargs)
    for _ in range(3):
        g = torch.randn(6, 11, generator=gen).to(dtype)
        p.grad, q.grad = _views(g)["strided" if layout == "transposed" else "transposed"], g.clone()
        opt_p.step()
        opt_q.step()
    assert not p.is_contiguous()
    assert torch.equal(p.detach(), q.detach())
    for name in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(opt_p.state[p][name], opt_q.state[q][name])


# -- non-finite gradients ------------------------------------------------------------------------------


def _poisoned(gen, shape, dtype, where):
    g = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    flat = g.view(-1)
    for index, value in where:
        flat[index] = value
    return g


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_scaler_skips_the_whole_step_for_a_single_nan(backend):
    # tests/test_optimizer.py covers an all-inf loss; here one NaN in one gradient of one group must
    # skip every group's step (GradScaler's contract), and the next clean step must go through.
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    opt = sp.SuperpositionalAdamW(
        [{"params": net[0].parameters()}, {"params": net[2].parameters(), "coverage": "all"}],
        quantum_weight=0.3,
        backend=backend,
    )
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    x = torch.randn(8, 5)

    def backward(poison: bool):
        opt.zero_grad()
        scaler.scale(net(x).pow(2).sum()).backward()
        if poison:
            net[2].weight.grad[1, 2] = float("nan")

    backward(False)
    scaler.step(opt)
    scaler.update()
    backward(True)
    snapshot = Snapshot(opt)
    scaler.step(opt)  # found a NaN: skipped
    snapshot.assert_unchanged(grads=False)  # (GradScaler unscales the gradients in place)
    scale = scaler.get_scale()
    scaler.update()
    assert scaler.get_scale() < scale
    backward(False)
    scaler.step(opt)
    scaler.update()
    assert all(float(s["step"]) == 2 for s in opt.state.values())
    assert all(torch.isfinite(p).all() for p in net.parameters())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("coverage", ["paper", "all"])
def test_non_finite_gradients_without_a_scaler_are_adamw_when_quantum_weight_is_zero(
    backend, dtype, coverage
):
    gen = torch.Generator().manual_seed(7)
    shapes = [(5, 6), (9,), ()]
    values = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in shapes]
    ours = [torch.nn.Parameter(v.clone()) for v in values]
    theirs = [torch.nn.Parameter(v.clone()) for v in values]
    kwargs = dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1)
    opt = sp.SuperpositionalAdamW(ours, quantum_weight=0.0, coverage=coverage, backend=backend, **kwargs)
    adamw = torch.optim.AdamW(theirs, **kwargs)
    poison = {0: [(3, float("nan")), (17, float("inf"))], 1: [(0, float("-inf"))], 2: []}
    for step in range(4):
        for i, (p, q) in enumerate(zip(ours, theirs)):
            g = _poisoned(gen, p.shape, dtype, poison[i] if step == 1 else [])
            if step == 2 and i == 2:
                g = torch.tensor(float("nan"), dtype=dtype)
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        adamw.step()
    tol = dict(atol=1e-6, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-13, rtol=1e-12)
    for p, q in zip(ours, theirs):
        assert torch.equal(torch.isnan(p), torch.isnan(q)) and torch.equal(torch.isinf(p), torch.isinf(q))
        torch.testing.assert_close(p.detach(), q.detach(), equal_nan=True, **tol)
        for name in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(opt.state[p][name], adamw.state[q][name], equal_nan=True, **tol)
        assert float(opt.state[p]["step"]) == float(adamw.state[q]["step"]) == 4


def _groups_of(index: int, shape: tuple, n: int, coverage: str) -> set[int]:
    """Flat indices of the circuit group that holds flat element ``index`` (docs/design.md,
    *The mathematics*)."""
    numel = math.prod(shape)
    if coverage == "paper":
        return set(range(min(n, numel))) if index < n else {index}
    row_length = numel // shape[0] if len(shape) >= 2 else numel
    row, column = divmod(index, row_length)
    start = row * row_length + (column // n) * n
    return set(range(start, min(start + n, (row + 1) * row_length)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("coverage", ["paper", "all"])
@pytest.mark.parametrize("preset", ["paper", "entangled", "attention"])
def test_non_finite_gradients_with_the_circuit_term_stay_in_their_circuit_group(backend, coverage, preset):
    """Observed behaviour with ``quantum_weight > 0`` (not documented in the README or docstrings):

    ``exp_avg``, ``exp_avg_sq`` and the step counters are exactly AdamW's (the circuit term does not
    touch them): NaN/Inf only where the gradient was. The parameter with the non-finite gradient
    becomes NaN, as with AdamW, and the circuits of its group then read a non-finite input (its
    gradient in this step, its NaN value in every later one), so other coordinates *of the same
    circuit group* may turn NaN too (the kernel: those whose expectation depends on it; the torch
    reference: the whole group). Nothing outside that group is affected: every other coordinate is
    bit for bit what the same run with a finite gradient there gives.
    """
    n = 4
    circuit = getattr(sp.circuits, preset)(n)
    gen = torch.Generator().manual_seed(11)
    shapes = [(3, 10), (13,)]
    poison = {0: [(12, float("nan"))], 1: [(2, float("inf")), (9, float("-inf"))]}
    values = [torch.randn(s, generator=gen) for s in shapes]
    bad = [torch.nn.Parameter(v.clone()) for v in values]
    good = [torch.nn.Parameter(v.clone()) for v in values]
    adamw_params = [torch.nn.Parameter(v.clone()) for v in values]
    kwargs = dict(lr=1e-2, quantum_weight=0.5, circuit=circuit, coverage=coverage, backend=backend)
    opt_bad, opt_good = sp.SuperpositionalAdamW(bad, **kwargs), sp.SuperpositionalAdamW(good, **kwargs)
    adamw = torch.optim.AdamW(adamw_params, lr=1e-2)
    for step in range(4):
        for i, (p, q, r) in enumerate(zip(bad, good, adamw_params)):
            g = torch.randn(p.shape, generator=gen)
            p.grad, q.grad, r.grad = g.clone(), g.clone(), g.clone()
            if step == 1:
                for index, value in poison[i]:
                    p.grad.view(-1)[index] = value
                    r.grad.view(-1)[index] = value
        opt_bad.step()
        opt_good.step()
        adamw.step()
    for i, (p, q, r) in enumerate(zip(bad, good, adamw_params)):
        touched = set().union(*(_groups_of(index, p.shape, n, coverage) for index, _ in poison[i]))
        outside = torch.ones(p.numel(), dtype=torch.bool)
        outside[sorted(touched)] = False
        flat_bad, flat_good = p.detach().view(-1), q.detach().view(-1)
        assert torch.equal(flat_bad[outside], flat_good[outside])
        for index, _ in poison[i]:
            assert torch.isnan(flat_bad[index])  # as AdamW: inf/inf or NaN in the update
            assert torch.isnan(r.detach().view(-1)[index])
        for name in ("exp_avg", "exp_avg_sq"):
            ours, theirs = opt_bad.state[p][name], adamw.state[r][name]
            assert torch.equal(ours.isnan(), theirs.isnan()) and torch.equal(ours.isinf(), theirs.isinf())
            torch.testing.assert_close(ours, theirs, equal_nan=True, atol=1e-6, rtol=1e-5)
        assert float(opt_bad.state[p]["step"]) == 4


# -- garbage found by tests/test_properties.py, kept as plain regressions ------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(betas=(None, 0.999)), TypeError, r"betas\[0\] must be a real number, got NoneType"),
        (dict(betas=(0.9, "0.999")), TypeError, r"betas\[1\] must be a real number, got str"),
        (dict(betas=(torch.tensor([0.9, 0.8]), 0.999)), ValueError, r"^Tensor betas\[0\] must be 1-element"),
        (dict(lr="1e-3"), TypeError, "lr must be a real number, got str"),
        (dict(eps=b"1"), TypeError, "eps must be a real number, got bytes"),
        (dict(coverage=np.array(["all", "paper"])), ValueError, "coverage must be 'paper' or 'all'"),
        (dict(amsgrad=np.array([True, False])), TypeError, "amsgrad must be a bool"),
    ],
)
def test_options_of_the_wrong_type_name_the_problem(kwargs, error, match):
    with pytest.raises(error, match=match):
        sp.SuperpositionalAdamW([torch.nn.Parameter(torch.zeros(3))], **kwargs)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: sp.param(0, scale="2"), "scale must be a real number, got str"),
        (lambda: sp.grad(1, offset=True), "offset must be a real number, got bool"),
        (lambda: sp.param(0, offset=b"1"), "offset must be a real number, got bytes"),
    ],
)
def test_affine_angle_parts_must_be_real_numbers(make, match):
    # An angle refuses a bool or a string (tests/test_circuit.py); its scale and offset must too.
    with pytest.raises(TypeError, match=match):
        make()


def test_numpy_views_with_negative_strides_are_simulated():
    theta = np.random.default_rng(5).uniform(-1, 1, size=(6, 3))
    reversed_rows = theta[::-1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = sp.simulate(sp.circuits.paper(3), reversed_rows)
    np.testing.assert_allclose(got, np.sin(np.pi * reversed_rows), atol=1e-13)
