"""SuperpositionalAdamW honours torch.optim.AdamW's contract: checkpoints of plain data, a stable
state_dict, load hooks in torch's order, distributed checkpoints both ways, AdamW's arguments
(AMSGrad included), complex parameters (docs/design.md, *Drop-in*)."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

import superpositional as sp

KERNEL_BACKENDS = ["cpu", "torch"]


def _model(seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).to(dtype)


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    for _ in range(steps):
        x = torch.randn(7, 6, generator=generator).to(dtype)
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()


def _ours(model: torch.nn.Module, **kwargs) -> sp.SuperpositionalAdamW:
    kwargs = {"quantum_weight": 0.3, "coverage": "all", "circuit": sp.circuits.entangled(3), **kwargs}
    return sp.SuperpositionalAdamW(model.parameters(), lr=1e-2, **kwargs)


def _saved(obj) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


def _assert_same_params(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def _assert_same_state_dicts(a: dict, b: dict) -> None:
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for key in a["state"]:
        assert a["state"][key].keys() == b["state"][key].keys()
        for name, value in a["state"][key].items():
            assert torch.equal(value, b["state"][key][name]), (key, name)


# -- 1. plain data ---------------------------------------------------------------------------------


@pytest.mark.parametrize("amsgrad", [False, True])
def test_a_checkpoint_loads_with_torch_load_defaults_and_resumes_bit_for_bit(amsgrad):
    straight, first = _model(), _model()
    opt_straight, opt_first = _ours(straight, amsgrad=amsgrad), _ours(first, amsgrad=amsgrad)
    _train(straight, opt_straight, 6)
    _train(first, opt_first, 3)
    checkpoint = torch.load(
        _saved({"model": first.state_dict(), "optim": opt_first.state_dict()})
    )  # defaults
    resumed = _model(seed=5)
    resumed.load_state_dict(checkpoint["model"])
    opt_resumed = _ours(resumed, amsgrad=amsgrad)
    opt_resumed.load_state_dict(checkpoint["optim"])
    _train(resumed, opt_resumed, 3, seed=2)
    _train(first, opt_first, 3, seed=2)
    _assert_same_params(resumed, first)
    assert opt_resumed.group_options(0)["circuit"] == sp.circuits.entangled(3)


def test_adamw_keeps_loading_with_defaults_after_it_loaded_our_checkpoint():
    model = _model()
    ours = _ours(model)
    _train(model, ours, 2)
    adamw = torch.optim.AdamW(model.parameters())
    adamw.load_state_dict(torch.load(_saved(ours.state_dict())))
    _train(model, adamw, 1)
    torch.load(_saved(adamw.state_dict()))  # the circuit it carries is plain text


def test_a_checkpoint_of_the_previous_format_still_loads():
    model = _model()
    opt = _ours(model)
    _train(model, opt, 2)
    old = copy.deepcopy(opt.state_dict())
    for group in old["param_groups"]:  # earlier versions stored the Circuit object itself
        group["circuit"] = sp.Circuit.from_json(group["circuit"])
    with pytest.raises(pickle.UnpicklingError):
        torch.load(_saved(old))
    fresh = _ours(_model())
    fresh.load_state_dict(torch.load(_saved(old), weights_only=False))
    _assert_same_state_dicts(fresh.state_dict(), opt.state_dict())


@pytest.mark.parametrize(
    "circuit",
    [
        sp.circuits.paper(4),
        sp.circuits.entangled(5),
        sp.Circuit(3)
        .h(0)
        .rx(1, -0.25)
        .ry(2, sp.grad(1, scale=0.1, offset=1e-300))
        .cz(0, 2)
        .observe(["-Y", "X", "Z"]),
    ],
)
def test_a_circuit_round_trips_through_its_json_description(circuit):
    text = circuit.to_json()
    assert isinstance(text, str)
    again = sp.Circuit.from_json(text)
    assert again == circuit and again.frozen and again.to_json() == text


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", "not a circuit's JSON description"),
        ('{"n_qubits": 2, "gates": [["ry", [0]]], "observables": ["Z", "Z"]}', "malformed ry gate"),
        ('{"n_qubits": 2, "gates": [["swap", [0, 1]]], "observables": ["Z", "Z"]}', "unknown gate 'swap'"),
        ('{"n_qubits": 2, "gates": [["h", [5]]], "observables": ["Z", "Z"]}', "qubit index 5 out of range"),
        ('{"n_qubits": 2, "gates": [], "observables": ["Z"]}', "observable"),
    ],
)
def test_damaged_circuit_json_is_refused_clearly(text, match):
    with pytest.raises(ValueError, match=match):
        sp.Circuit.from_json(text)


def test_a_checkpoint_with_a_damaged_circuit_changes_nothing():
    model = _model()
    opt = _ours(model)
    _train(model, opt, 1)
    state_dict = copy.deepcopy(opt.state_dict())
    state_dict["param_groups"][0]["circuit"] = state_dict["param_groups"][0]["circuit"].replace("ry", "rq")
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match="param group 0: its circuit does not load: unknown gate 'rq'"):
        opt.load_state_dict(state_dict)
    _assert_same_state_dicts(opt.state_dict(), before)


# -- 2. a stable state_dict ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "through",
    [
        copy.deepcopy,
        lambda opt: pickle.loads(pickle.dumps(opt)),
        lambda opt: _loaded_into_fresh(opt),
        lambda opt: _loaded_into_fresh(_loaded_into_fresh(opt)),
    ],
    ids=["deepcopy", "pickle", "load", "load twice"],
)
def test_state_dict_comes_back_key_for_key(through):
    model = _model()
    opt = _ours(model)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.randn(3))], "quantum_weight": 0.0, "lr": 0.5})
    _train(model, opt, 2)
    before = opt.state_dict()
    after = through(opt).state_dict()
    assert [list(g) for g in after["param_groups"]] == [list(g) for g in before["param_groups"]]
    _assert_same_state_dicts(after, before)


def _loaded_into_fresh(opt: sp.SuperpositionalAdamW) -> sp.SuperpositionalAdamW:
    params = [[torch.nn.Parameter(p.detach().clone()) for p in g["params"]] for g in opt.param_groups]
    fresh = sp.SuperpositionalAdamW([{"params": ps} for ps in params])
    fresh.load_state_dict(opt.state_dict())
    return fresh


def test_param_groups_carry_adamw_keys_and_the_options_given():
    params = [torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2))]
    adamw = torch.optim.AdamW(params[:1])
    ours = sp.SuperpositionalAdamW([{"params": params[:1]}, {"params": params[1:], "coverage": "all"}])
    assert list(ours.param_groups[0]) == list(adamw.param_groups[0])
    assert set(ours.param_groups[1]) == set(adamw.param_groups[0]) | {"coverage"}
    assert ours.group_options(0)["quantum_weight"] == 0.1 and ours.group_options(1)["coverage"] == "all"
    saved = ours.state_dict()["param_groups"][0]
    assert list(saved)[: len(adamw.param_groups[0]) - 1] == [
        k for k in adamw.param_groups[0] if k != "params"
    ]
    assert {"quantum_weight", "circuit", "coverage", "backend"} <= set(saved)
    assert "quantum_weight: 0.1" in repr(ours)


# -- 3. load hooks in torch's order ----------------------------------------------------------------


def test_load_hooks_run_in_torch_order_and_what_they_do_stands():
    model = _model()
    opt = _ours(model)
    _train(model, opt, 2)
    saved = copy.deepcopy(opt.state_dict())
    target = _ours(_model())
    seen: list[str] = []

    def rename(optimizer, state_dict):  # a checkpoint with its own key for exp_avg, converted
        seen.append("pre")
        assert not optimizer.state  # nothing is loaded yet
        state_dict = copy.deepcopy(state_dict)
        for entry in state_dict["state"].values():
            entry["exp_avg"] = entry.pop("momentum").mul(2)
        return state_dict

    def mark(optimizer):
        seen.append("post")
        first = optimizer.state[optimizer.param_groups[0]["params"][0]]
        assert torch.equal(first["exp_avg"], saved["state"][0]["momentum"] * 2)  # loaded before the post-hook
        first["exp_avg_sq"].fill_(3.0)

    target.register_load_state_dict_pre_hook(rename)
    target.register_load_state_dict_post_hook(mark)
    for entry in saved["state"].values():
        entry["momentum"] = entry.pop("exp_avg")
    target.load_state_dict(saved)
    assert seen == ["pre", "post"]
    first = target.state[target.param_groups[0]["params"][0]]
    assert torch.equal(first["exp_avg"], saved["state"][0]["momentum"] * 2)
    assert bool((first["exp_avg_sq"] == 3.0).all())


def test_state_dict_hooks_run_and_a_post_hook_result_stands():
    opt = _ours(_model())
    calls: list[str] = []
    opt.register_state_dict_pre_hook(lambda o: calls.append("pre"))
    opt.register_state_dict_post_hook(
        lambda o, sd: {**sd, "extra": isinstance(sd["param_groups"][0]["circuit"], str)}
    )
    assert opt.state_dict()["extra"] is True and calls == ["pre"]


# -- 4. distributed checkpoints --------------------------------------------------------------------


@pytest.mark.parametrize("flatten", [False, True], ids=["nested", "flattened"])
def test_distributed_checkpoints_go_both_ways_with_adamw(flatten):
    options = StateDictOptions(flatten_optimizer_state_dict=flatten)
    a = _model()
    adamw = torch.optim.AdamW(a.parameters(), lr=1e-2)
    _train(a, adamw, 3)
    b = _model()
    b.load_state_dict(a.state_dict())
    ours = _ours(b, quantum_weight=0.0)
    # copy.deepcopy: a state_dict holds references to the live states (torch's convention), and
    # AdamW's load keeps tensors that already have the right dtype and device.
    set_optimizer_state_dict(
        b, ours, copy.deepcopy(get_optimizer_state_dict(a, adamw, options=options)), options=options
    )
    assert ours.group_options(0)["coverage"] == "all"  # what AdamW's checkpoint lacks: this optimizer's own
    _train(a, adamw, 2, seed=3)
    _train(b, ours, 2, seed=3)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
    back = torch.optim.AdamW(a.parameters(), lr=1e-2)
    # Without gradients, as after zero_grad(): the flattened form reads a state's keys from the
    # target's own state, which torch creates with a step of zero gradients only if none is set.
    a.zero_grad(set_to_none=True)
    set_optimizer_state_dict(
        a, back, copy.deepcopy(get_optimizer_state_dict(b, ours, options=options)), options=options
    )
    _train(a, back, 2, seed=4)
    _train(b, ours, 2, seed=4)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def test_a_flattened_checkpoint_of_ours_resumes_ours_bit_for_bit():
    options = StateDictOptions(flatten_optimizer_state_dict=True)
    a, b = _model(), _model()
    opt_a = _ours(a, amsgrad=True)
    _train(a, opt_a, 3)
    b.load_state_dict(a.state_dict())
    opt_b = _ours(b, amsgrad=True)
    set_optimizer_state_dict(
        b, opt_b, copy.deepcopy(get_optimizer_state_dict(a, opt_a, options=options)), options=options
    )
    _train(a, opt_a, 2, seed=3)
    _train(b, opt_b, 2, seed=3)
    _assert_same_params(a, b)


# -- 5. AdamW's arguments, AMSGrad everywhere ------------------------------------------------------


def test_every_adamw_argument_is_accepted_and_recorded():
    kwargs = dict(maximize=True, foreach=False, capturable=True, differentiable=False, fused=None)
    p = torch.nn.Parameter(torch.randn(4))
    # Positionally as AdamW takes them: amsgrad is the sixth.
    ours = sp.SuperpositionalAdamW([p], 1e-3, (0.9, 0.99), 1e-6, 0.05, True, **kwargs)
    adamw = torch.optim.AdamW([p], 1e-3, (0.9, 0.99), 1e-6, 0.05, True, **kwargs)
    ours_group = {k: v for k, v in ours.param_groups[0].items() if k != "params"}
    adamw_group = {k: v for k, v in adamw.param_groups[0].items() if k != "params"}
    assert ours_group == adamw_group
    for fused in (True, False):
        sp.SuperpositionalAdamW([p], fused=fused)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_amsgrad_with_quantum_weight_zero_is_adamw_amsgrad(backend, dtype):
    a, b = _model(dtype=dtype), _model(dtype=dtype)
    adamw = torch.optim.AdamW(a.parameters(), lr=1e-2, weight_decay=0.1, amsgrad=True)
    ours = sp.SuperpositionalAdamW(
        b.parameters(), lr=1e-2, weight_decay=0.1, amsgrad=True, quantum_weight=0.0, backend=backend
    )
    # Alternating gradient sizes, so that the running maximum is not simply the latest exp_avg_sq.
    for step in range(8):
        for model, opt in ((a, adamw), (b, ours)):
            opt.zero_grad()
            x = torch.randn(7, 6, generator=torch.Generator().manual_seed(step)).to(dtype)
            (model(x).square().mean() * (10.0 if step % 3 == 0 else 0.1)).backward()
            opt.step()
    tol = dict(atol=1e-6, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-13, rtol=1e-12)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, **tol)
        torch.testing.assert_close(adamw.state[p]["max_exp_avg_sq"], ours.state[q]["max_exp_avg_sq"], **tol)


@pytest.mark.parametrize("coverage", ["paper", "all"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_amsgrad_kernel_matches_the_torch_backend_with_the_circuit_term(coverage, dtype, cpu_isa):
    a, b = _model(dtype=dtype), _model(dtype=dtype)
    kwargs = dict(
        amsgrad=True, quantum_weight=0.7, coverage=coverage, circuit=sp.circuits.entangled(4), lr=1e-2
    )
    ours = sp.SuperpositionalAdamW(a.parameters(), backend="cpu", **kwargs)
    reference = sp.SuperpositionalAdamW(b.parameters(), backend="torch", **kwargs)
    for step in range(5):
        for model, opt in ((a, ours), (b, reference)):
            opt.zero_grad()
            x = torch.randn(7, 6, generator=torch.Generator().manual_seed(step)).to(dtype)
            (model(x).square().mean() * (10.0 if step % 2 else 0.1)).backward()
            opt.step()
    tol = {
        torch.float32: (1e-6, 1e-5),
        torch.float64: (1e-13, 1e-12),
        torch.bfloat16: (1e-2, 1e-2),
        torch.float16: (1e-3, 1e-3),
    }[dtype]
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=tol[0], rtol=tol[1])
        assert ours.state[p]["max_exp_avg_sq"].dtype == (
            torch.float64 if dtype == torch.float64 else torch.float32
        )


def test_a_torch_amsgrad_checkpoint_loads_and_continues_as_adamw():
    a, b = _model(), _model()
    adamw = torch.optim.AdamW(a.parameters(), lr=1e-2, amsgrad=True)
    _train(a, adamw, 3)
    b.load_state_dict(a.state_dict())
    ours = sp.SuperpositionalAdamW(b.parameters(), lr=1e-2, quantum_weight=0.0)
    ours.load_state_dict(torch.load(_saved(adamw.state_dict())))
    assert ours.group_options(0)["amsgrad"] is True
    _train(a, adamw, 3, seed=2)
    _train(b, ours, 3, seed=2)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def test_an_amsgrad_state_without_its_maximum_is_refused_naming_it():
    a = _model()
    plain = sp.SuperpositionalAdamW(a.parameters())
    _train(a, plain, 1)
    state_dict = copy.deepcopy(plain.state_dict())
    state_dict["param_groups"][0]["amsgrad"] = True  # the checkpoint's options win: switched on there
    fresh = sp.SuperpositionalAdamW(a.parameters())
    with pytest.raises(ValueError, match=r"state of parameter 0 has no 'max_exp_avg_sq'"):
        fresh.load_state_dict(state_dict)
    assert not fresh.state and fresh.group_options(0)["amsgrad"] is False


def test_differentiable_true_is_refused_by_name():
    with pytest.raises(ValueError, match="differentiable=True is not supported"):
        sp.SuperpositionalAdamW([torch.nn.Parameter(torch.randn(2))], differentiable=True)


# -- 6. complex parameters -------------------------------------------------------------------------


def _complex_params(dtype: torch.dtype, seed: int = 0) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(5, 3), (7,), ()]
    return [torch.nn.Parameter(torch.randn(s, dtype=dtype, generator=generator)) for s in shapes]


def _complex_grads(params: list[torch.Tensor], step: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(100 + step)
    return [torch.randn(p.shape, dtype=p.dtype, generator=generator) for p in params]


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_complex_parameters_step_as_adamw_when_quantum_weight_is_zero(backend, dtype, amsgrad):
    a, b = _complex_params(dtype), _complex_params(dtype)
    adamw = torch.optim.AdamW(a, lr=1e-2, amsgrad=amsgrad, weight_decay=0.1)
    ours = sp.SuperpositionalAdamW(
        b, lr=1e-2, amsgrad=amsgrad, weight_decay=0.1, quantum_weight=0.0, backend=backend
    )
    for step in range(4):
        for params, opt in ((a, adamw), (b, ours)):
            for p, g in zip(params, _complex_grads(params, step)):
                p.grad = g
            opt.step()
    tol = dict(atol=1e-6, rtol=1e-5) if dtype == torch.complex64 else dict(atol=1e-13, rtol=1e-12)
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, **tol)
        assert ours.state[q]["exp_avg"].dtype == dtype  # complex states, as torch keeps them
        torch.testing.assert_close(adamw.state[p]["exp_avg_sq"], ours.state[q]["exp_avg_sq"], **tol)


@pytest.mark.parametrize("coverage", ["paper", "all"])
def test_complex_parameters_are_stepped_as_their_real_views(coverage):
    """The circuits read the real view (real and imaginary parts interleaved per row), so a complex
    parameter steps exactly as the real tensor view_as_real gives, flattened for dim 0 and 1."""
    kwargs = dict(lr=1e-2, quantum_weight=0.8, coverage=coverage, circuit=sp.circuits.entangled(4))
    complex_params = _complex_params(torch.complex64)
    real_params = [torch.nn.Parameter(_real_rows(p.detach()).clone()) for p in complex_params]
    opt_complex = sp.SuperpositionalAdamW(complex_params, **kwargs)
    opt_real = sp.SuperpositionalAdamW(real_params, backend="torch", **kwargs)
    for step in range(3):
        grads = _complex_grads(complex_params, step)
        for p, q, g in zip(complex_params, real_params, grads):
            p.grad = g
            q.grad = _real_rows(g)
        opt_complex.step()
        opt_real.step()
    for p, q in zip(complex_params, real_params):
        torch.testing.assert_close(_real_rows(p.detach()), q.detach(), atol=1e-6, rtol=1e-5)


def _real_rows(t: torch.Tensor) -> torch.Tensor:
    """The real tensor with the complex tensor's rows: each row's parts interleaved, one row for dim <= 1."""
    real = torch.view_as_real(t)
    return real.reshape(-1) if t.dim() <= 1 else real.reshape(t.shape[0], -1)


def test_a_torch_checkpoint_of_complex_parameters_loads_and_continues():
    a, b = _complex_params(torch.complex128), _complex_params(torch.complex128)
    adamw = torch.optim.AdamW(a, lr=1e-2)
    for step in range(2):
        for p, g in zip(a, _complex_grads(a, step)):
            p.grad = g
        adamw.step()
    for p, q in zip(a, b):
        q.data.copy_(p.data)
    ours = sp.SuperpositionalAdamW(b, lr=1e-2, quantum_weight=0.0)
    ours.load_state_dict(torch.load(_saved(adamw.state_dict())))
    for step in range(2, 4):
        for params, opt in ((a, adamw), (b, ours)):
            for p, g in zip(params, _complex_grads(params, step)):
                p.grad = g
            opt.step()
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, atol=1e-13, rtol=1e-12)


def test_fused_true_refuses_complex_parameters_as_adamw_does():
    p = torch.nn.Parameter(torch.randn(3, dtype=torch.complex64))
    p.grad = torch.randn(3, dtype=torch.complex64)
    opt = sp.SuperpositionalAdamW([p], fused=True)
    before = p.detach().clone()
    with pytest.raises(
        RuntimeError, match=r"^`fused=True` requires all the params to be floating point Tensors"
    ):
        opt.step()
    assert torch.equal(p.detach(), before) and not opt.state


# -- GradScaler with fused=True, and fused=True's refusals -----------------------------------------


def test_fused_true_follows_grad_scaler_protocol_as_fused_adamw():
    """With fused=True, GradScaler leaves unscaling and skipping to the step (grad_scale, found_inf)."""
    a, b = _model(), _model()
    adamw = torch.optim.AdamW(a.parameters(), lr=1e-2, fused=True)
    ours = sp.SuperpositionalAdamW(b.parameters(), lr=1e-2, fused=True, quantum_weight=0.0)
    assert ours._step_supports_amp_scaling
    scalers = [torch.amp.GradScaler("cpu", init_scale=2.0**10) for _ in range(2)]
    for step in range(5):
        for model, opt, scaler in ((a, adamw, scalers[0]), (b, ours, scalers[1])):
            opt.zero_grad()
            x = torch.randn(7, 6, generator=torch.Generator().manual_seed(step))
            loss = model(x).square().mean() * (float("inf") if step == 2 else 1.0)  # one skipped step
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
        assert float(ours.state[q]["step"]) == float(adamw.state[p]["step"]) == 4


def test_found_inf_skips_the_whole_step():
    params = [torch.nn.Parameter(torch.ones(3)) for _ in range(2)]
    for p in params:
        p.grad = torch.ones(3)
    opt = sp.SuperpositionalAdamW(params, fused=True)
    opt.grad_scale, opt.found_inf = torch.ones(1), torch.ones(())
    opt.step()
    assert all(torch.equal(p, torch.ones(3)) for p in params) and not opt.state
    opt.found_inf = torch.zeros(())
    opt.grad_scale = torch.full((1,), 4.0)
    opt.step()
    assert all(torch.equal(p.grad, torch.full((3,), 0.25)) for p in params)  # unscaled in place, as torch
    assert all(float(opt.state[p]["step"]) == 1 for p in params)


def test_fused_true_refuses_the_meta_device_with_adamw_message():
    model = torch.nn.Linear(2, 3, device="meta")
    opt = sp.SuperpositionalAdamW(model.parameters(), fused=True)
    for p in model.parameters():
        p.grad = torch.rand_like(p)
    with pytest.raises(
        RuntimeError, match=r"^`fused=True` requires all the params to be floating point Tensors"
    ):
        opt.step()
