"""SuperpositionalAdamW step by step against torch.optim.AdamW, its own torch backend and Eq. 1-2.

Modelled on bitsandbytes' optimizer tests: fresh random gradients every step, per-dtype
tolerances, odd sizes, and a state_dict round trip in the middle of the run.
"""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch

import superpositional as sp

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
# After many steps the two implementations may differ by a few roundings of the parameter dtype.
TOL = {
    torch.float32: dict(atol=2e-6, rtol=1e-5),
    torch.float64: dict(atol=1e-13, rtol=1e-12),
    torch.bfloat16: dict(atol=2e-2, rtol=2e-2),
    torch.float16: dict(atol=3e-3, rtol=3e-3),
}
SHAPES = [(), (1,), (3,), (4097,), (7, 5), (6, 4), (3, 4, 5), (2, 1, 3)]
KERNEL_BACKENDS = [b for b in ("cpu",) if b in sp.available_backends()]


def _normal(rng, shape, scale=1.0):
    return torch.as_tensor(rng.normal(size=shape) * scale, dtype=torch.float64)


def _params(rng, dtype, shapes=SHAPES):
    return [torch.nn.Parameter(_normal(rng, s).to(dtype)) for s in shapes]


def _twin(params):
    return [torch.nn.Parameter(p.detach().clone()) for p in params]


def _set_grads(rng, *param_lists, scale=1.0):
    for group in zip(*param_lists):
        g = _normal(rng, group[0].shape, scale).to(group[0].dtype)
        for p in group:
            p.grad = g.clone()


def _assert_close(a_list, b_list, dtype, **override):
    tol = {**TOL[dtype], **override}
    for a, b in zip(a_list, b_list):
        torch.testing.assert_close(a.detach().double(), b.detach().double(), **tol)


def _round_trip(opt_class, params, opt, **kwargs):
    """A fresh optimizer over ``params`` that continues from ``opt`` through a serialised state_dict."""
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    fresh = opt_class(params, **kwargs)
    fresh.load_state_dict(torch.load(buffer, weights_only=False))
    return fresh


@pytest.mark.parametrize("backend", [*KERNEL_BACKENDS, "torch"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_quantum_weight_zero_is_adamw(backend, dtype, rng):
    ours_params = _params(rng, dtype)
    # 16-bit parameters keep float32 states and math (docs/design.md, *The mathematics*);
    # torch.optim.AdamW keeps 16-bit states, whose exp_avg_sq underflows in float16. The peer for
    # them is therefore torch's AdamW on a float32 copy, rounded to the parameter dtype after every
    # step, as ours rounds.
    low_precision = dtype in (torch.bfloat16, torch.float16)
    theirs_params = [
        torch.nn.Parameter(p.detach().float() if low_precision else p.detach().clone()) for p in ours_params
    ]
    kwargs = dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)
    ours = sp.SuperpositionalAdamW(ours_params, quantum_weight=0.0, backend=backend, **kwargs)
    theirs = torch.optim.AdamW(theirs_params, **kwargs)
    for _ in range(50):
        _set_grads(rng, ours_params)
        for mine, peer in zip(ours_params, theirs_params):
            peer.grad = mine.grad.to(peer.dtype)
        ours.step()
        theirs.step()
        if low_precision:
            for peer in theirs_params:
                peer.data.copy_(peer.data.to(dtype).float())
    _assert_close(ours_params, theirs_params, dtype)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("preset", "coverage"),
    [("paper", "paper"), ("paper", "all"), ("entangled", "paper"), ("entangled", "all"), ("random", "all")],
)
def test_kernel_matches_the_torch_backend_step_by_step(cpu_isa, backend, dtype, preset, coverage, rng):
    n = int(rng.choice([3, 4]))
    if preset == "random":
        from superpositional.testing import random_circuit

        circuit = random_circuit(n, 14, rng)
    else:
        circuit = getattr(sp.circuits, preset)(n)
    kwargs = dict(lr=1e-2, weight_decay=0.1, quantum_weight=0.7, circuit=circuit, coverage=coverage)
    a_params = _params(rng, dtype)
    b_params = _twin(a_params)
    a = sp.SuperpositionalAdamW(a_params, backend=backend, **kwargs)
    b = sp.SuperpositionalAdamW(b_params, backend="torch", **kwargs)
    for step in range(12):
        if step == 6:
            a = _round_trip(sp.SuperpositionalAdamW, a_params, a, backend=backend, **kwargs)
            b = _round_trip(sp.SuperpositionalAdamW, b_params, b, backend="torch", **kwargs)
        _set_grads(rng, a_params, b_params)
        a.step()
        b.step()
        _assert_close(a_params, b_params, dtype)
    for pa, pb in zip(a_params, b_params):
        sa, sb = a.state[pa], b.state[pb]
        assert float(sa["step"]) == float(sb["step"]) == 12
        torch.testing.assert_close(sa["exp_avg"], sb["exp_avg"], **TOL[torch.float32])
        torch.testing.assert_close(sa["exp_avg_sq"], sb["exp_avg_sq"], **TOL[torch.float32])


@pytest.mark.parametrize("backend", [*KERNEL_BACKENDS, "torch"])
def test_paper_coverage_is_the_literal_eq_1_and_2(backend, rng):
    # Eq. 1: AdamW's update plus lambda * Q(theta, g); Eq. 2: Q_i = sin(pi theta_i) g_i for i < 4.
    lr, b1, b2, eps, wd, lam = 1e-2, 0.9, 0.999, 1e-8, 0.01, 0.5
    shapes = [(10,), (3, 5), (2,)]
    params = _params(rng, torch.float64, shapes)
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
        coverage="paper",
        backend=backend,
    )
    for t in range(1, 8):
        _set_grads(rng, params)
        for i, p in enumerate(params):
            g = p.grad.reshape(-1)
            theta = expected[i].reshape(-1).clone()
            q = torch.zeros_like(theta)
            q[:4] = torch.sin(math.pi * theta[:4]) * g[:4]
            m[i] = b1 * m[i] + (1 - b1) * p.grad
            v[i] = b2 * v[i] + (1 - b2) * p.grad**2
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            update = m_hat / (v_hat.sqrt() + eps) + lam * q.reshape(p.shape)
            expected[i] = expected[i] * (1 - lr * wd) - lr * update
        opt.step()
        for p, e in zip(params, expected):
            torch.testing.assert_close(p.detach(), e, atol=1e-12, rtol=1e-11)


@pytest.mark.parametrize("backend", [*KERNEL_BACKENDS, "torch"])
def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(backend, rng):
    seed = int(rng.integers(2**31))
    kwargs = dict(
        lr=1e-2, quantum_weight=0.3, circuit=sp.circuits.entangled(4), coverage="all", backend=backend
    )

    def model():
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(9, 13), torch.nn.Tanh(), torch.nn.Linear(13, 3))

    def train(net, opt, steps, first):
        for s in range(first, first + steps):
            gen = torch.Generator().manual_seed(seed + s)
            x, y = torch.randn(16, 9, generator=gen), torch.randn(16, 3, generator=gen)
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(x), y).backward()
            opt.step()

    straight = model()
    opt = sp.SuperpositionalAdamW(straight.parameters(), **kwargs)
    train(straight, opt, 20, 0)

    first = model()
    opt = sp.SuperpositionalAdamW(first.parameters(), **kwargs)
    train(first, opt, 10, 0)
    buffer = io.BytesIO()
    torch.save({"model": first.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=False)
    resumed = model()
    resumed.load_state_dict(checkpoint["model"])
    opt = sp.SuperpositionalAdamW(resumed.parameters(), **kwargs)
    opt.load_state_dict(checkpoint["opt"])
    train(resumed, opt, 10, 10)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_adamw_checkpoint_loads_and_goes_back(rng):
    params_torch = _params(rng, torch.float32)
    params_ours = _twin(params_torch)
    adamw = torch.optim.AdamW(params_torch, lr=2e-3)
    for _ in range(5):
        _set_grads(rng, params_torch)
        adamw.step()
    for p, q in zip(params_ours, params_torch):
        p.data.copy_(q.data)
    ours = sp.SuperpositionalAdamW(params_ours, quantum_weight=0.0)
    ours.load_state_dict(adamw.state_dict())
    assert ours.group_options(0)["coverage"] == "paper"  # missing keys take defaults
    assert ours.group_options(0)["quantum_weight"] == 0.0  # ... and this optimizer's own setting
    assert "quantum_weight" not in ours.param_groups[0]  # ... which the group follows
    for _ in range(5):
        _set_grads(rng, params_ours, params_torch)
        ours.step()
        adamw.step()
    _assert_close(params_ours, params_torch, torch.float32)
    back = torch.optim.AdamW(params_torch, lr=2e-3)
    # A state_dict holds references to the live states (torch's convention): copy it, as saving would.
    back.load_state_dict(copy.deepcopy(ours.state_dict()))
    for _ in range(3):
        _set_grads(rng, params_ours, params_torch)
        ours.step()
        back.step()
    _assert_close(params_ours, params_torch, torch.float32)


def test_bf16_states_stay_float32_through_a_checkpoint(rng):
    params = _params(rng, torch.bfloat16, [(8, 3)])
    opt = sp.SuperpositionalAdamW(params)
    _set_grads(rng, params)
    opt.step()
    state = opt.state[params[0]]
    assert state["exp_avg"].dtype == torch.float32
    saved = {k: v.clone() for k, v in state.items()}
    fresh = sp.SuperpositionalAdamW(params)
    fresh.load_state_dict(opt.state_dict())
    loaded = fresh.state[params[0]]
    assert loaded["exp_avg"].dtype == torch.float32
    assert torch.equal(loaded["exp_avg"], saved["exp_avg"]) and torch.equal(
        loaded["exp_avg_sq"], saved["exp_avg_sq"]
    )


def test_many_tensors_of_mixed_sizes_and_dtypes_in_one_step(rng):
    shapes = [(int(rng.integers(1, 300)),) for _ in range(40)] + [
        (int(rng.integers(1, 40)), 7) for _ in range(40)
    ]
    kwargs = dict(quantum_weight=0.4, circuit=sp.circuits.entangled(3), coverage="all", lr=1e-2)
    a = _params(rng, torch.float32, shapes) + _params(rng, torch.float64, shapes[:10])
    b = _twin(a)
    opt_a = sp.SuperpositionalAdamW(a, **kwargs)
    opt_b = sp.SuperpositionalAdamW(b, backend="torch", **kwargs)
    for _ in range(4):
        _set_grads(rng, a, b)
        opt_a.step()
        opt_b.step()
    _assert_close(a[:80], b[:80], torch.float32)
    _assert_close(a[80:], b[80:], torch.float64)


def test_non_contiguous_params_and_grads(rng):
    kwargs = dict(quantum_weight=0.5, circuit=sp.circuits.entangled(4), coverage="all", lr=1e-2)
    base_a = torch.from_numpy(rng.normal(size=(9, 6)))
    base_b = base_a.clone()
    pa = torch.nn.Parameter(base_a.t())  # [6, 9], column-major
    pb = torch.nn.Parameter(base_b.t().contiguous())
    opt_a = sp.SuperpositionalAdamW([pa], **kwargs)
    opt_b = sp.SuperpositionalAdamW([pb], backend="torch", **kwargs)
    for _ in range(5):
        g = torch.from_numpy(rng.normal(size=(6, 18)))[:, ::2]
        pa.grad, pb.grad = g, g.contiguous()
        opt_a.step()
        opt_b.step()
    assert not pa.is_contiguous()
    torch.testing.assert_close(pa.detach(), pb.detach(), atol=1e-13, rtol=1e-12)


def test_param_groups_keep_their_own_options(rng):
    a = _params(rng, torch.float32, [(5, 4), (12,)])
    b = _twin(a)
    groups = lambda ps: [  # noqa: E731
        {"params": [ps[0]], "quantum_weight": 0.9, "circuit": sp.circuits.entangled(2), "coverage": "all"},
        {"params": [ps[1]], "lr": 5e-2, "weight_decay": 0.0},
    ]
    opt_a = sp.SuperpositionalAdamW(groups(a), lr=1e-2)
    opt_b = sp.SuperpositionalAdamW(groups(b), lr=1e-2, backend="torch")
    assert opt_a.group_options(1)["coverage"] == "paper" and opt_a.param_groups[1]["lr"] == 5e-2
    assert opt_a.param_groups[0]["coverage"] == "all" and "coverage" not in opt_a.param_groups[1]
    for _ in range(5):
        _set_grads(rng, a, b)
        opt_a.step()
        opt_b.step()
    _assert_close(a, b, torch.float32)


@pytest.mark.parametrize("backend", [*KERNEL_BACKENDS, "torch"])
def test_maximize(backend, rng):
    a = _params(rng, torch.float64, [(7, 3)])
    b = _twin(a)
    c = _twin(a)
    opt_a = sp.SuperpositionalAdamW(a, maximize=True, quantum_weight=0.0, backend=backend)
    opt_b = torch.optim.AdamW(b, maximize=True)
    opt_c = sp.SuperpositionalAdamW(c, maximize=False, quantum_weight=0.0, backend=backend)
    for _ in range(5):
        _set_grads(rng, a, b)
        for p, q in zip(c, a):
            p.grad = -q.grad
        opt_a.step()
        opt_b.step()
        opt_c.step()
    _assert_close(a, b, torch.float64)
    _assert_close(a, c, torch.float64)


def test_closure_is_called_once_and_its_loss_returned(rng):
    net = torch.nn.Linear(4, 2)
    opt = sp.SuperpositionalAdamW(net.parameters())
    x = torch.randn(8, 4)
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = net(x).pow(2).mean()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert len(calls) == 1 and isinstance(loss, torch.Tensor)


def test_lr_scheduler_drives_the_learning_rate_like_adamw(rng):
    a = _params(rng, torch.float32, [(6, 6)])
    b = _twin(a)
    opt_a = sp.SuperpositionalAdamW(a, lr=1e-2, quantum_weight=0.0)
    opt_b = torch.optim.AdamW(b, lr=1e-2)
    sched_a = torch.optim.lr_scheduler.StepLR(opt_a, step_size=2, gamma=0.5)
    sched_b = torch.optim.lr_scheduler.StepLR(opt_b, step_size=2, gamma=0.5)
    for _ in range(7):
        _set_grads(rng, a, b)
        opt_a.step()
        opt_b.step()
        sched_a.step()
        sched_b.step()
    assert opt_a.param_groups[0]["lr"] == opt_b.param_groups[0]["lr"] == 1e-2 * 0.5**3
    _assert_close(a, b, torch.float32)


def test_step_hooks_run(rng):
    params = _params(rng, torch.float32, [(3,)])
    opt = sp.SuperpositionalAdamW(params)
    seen = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append("post"))
    _set_grads(rng, params)
    opt.step()
    assert seen == ["pre", "post"]


def test_zero_grad_and_params_without_grads(rng):
    params = _params(rng, torch.float32, [(3,), (4,)])
    opt = sp.SuperpositionalAdamW(params)
    params[0].grad = torch.ones(3)
    before = params[1].detach().clone()
    opt.step()
    assert torch.equal(params[1].detach(), before) and params[1] not in opt.state
    opt.zero_grad()
    assert params[0].grad is None


def test_grad_scaler_skips_steps_with_infs(rng):
    net = torch.nn.Linear(5, 3)
    opt = sp.SuperpositionalAdamW(net.parameters(), quantum_weight=0.3, coverage="all")
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    x = torch.randn(4, 5)
    loss = net(x).sum()
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    opt.zero_grad()
    params = [p.detach().clone() for p in net.parameters()]
    states = {k: {n: t.clone() for n, t in opt.state[p].items()} for k, p in enumerate(net.parameters())}
    loss = net(x).sum() * float("inf")
    scaler.scale(loss).backward()
    scaler.step(opt)  # infs found: the step is skipped
    scaler.update()
    for p, before in zip(net.parameters(), params):
        assert torch.equal(p.detach(), before)
    for k, p in enumerate(net.parameters()):
        for name, t in opt.state[p].items():
            assert torch.equal(t, states[k][name])
    assert scaler.get_scale() < 2.0**10


def test_non_finite_gradients_without_a_scaler_behave_as_adamw(rng):
    a = _params(rng, torch.float32, [(5,)])
    b = _twin(a)
    opt_a = sp.SuperpositionalAdamW(a, quantum_weight=0.0)
    opt_b = torch.optim.AdamW(b)
    g = torch.tensor([1.0, float("nan"), float("inf"), -2.0, 0.5])
    a[0].grad, b[0].grad = g.clone(), g.clone()
    opt_a.step()
    opt_b.step()
    torch.testing.assert_close(a[0].detach(), b[0].detach(), equal_nan=True)
    torch.testing.assert_close(opt_a.state[a[0]]["exp_avg"], opt_b.state[b[0]]["exp_avg"], equal_nan=True)
