"""What an adversarial user found (issue 14), each kept as a regression test: atomic steps, honest
state loading, autograd version counters, constant angles beyond float32, observables with
whitespace."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import superpositional as sp

from unchanged import Snapshot

BACKENDS = ["cpu", "torch"]


def _stepped(backend: str = "cpu", **kwargs) -> tuple[sp.SuperpositionalAdamW, list[torch.nn.Parameter]]:
    """Two param groups (float32, and float32 + float64), stepped once."""
    generator = torch.Generator().manual_seed(0)
    params = [
        torch.nn.Parameter(torch.randn(4, 3, generator=generator)),
        torch.nn.Parameter(torch.randn(5, generator=generator)),
        torch.nn.Parameter(torch.randn(6, dtype=torch.float64, generator=generator)),
    ]
    opt = sp.SuperpositionalAdamW(
        [{"params": params[:1]}, {"params": params[1:]}], backend=backend, quantum_weight=0.4, **kwargs
    )
    _grads(params)
    opt.step()
    _grads(params)
    return opt, params


def _grads(params: list[torch.Tensor]) -> None:
    for p in params:
        p.grad = torch.randn_like(p)


# -- 1. a step that fails changes nothing ----------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("index", "change", "message"),
    [
        # A new shape: the state no longer fits.
        (
            1,
            lambda opt, p: setattr(p, "data", torch.zeros(6)),
            r"param group 1: the optimizer state exp_avg .* shape \[6\]",
        ),
        # The plan skips the full state check while the state tensors and the parameter are
        # unchanged since it last passed (same objects at the same addresses): a .data replacement
        # keeps the object and must still be caught.
        (
            0,
            lambda opt, p: setattr(opt.state[p]["exp_avg"], "data", torch.zeros(3)),
            r"param group 0: the optimizer state",
        ),
        (
            0,
            lambda opt, p: setattr(p, "data", p.data.view(-1)[:2].clone().view(2)),
            r"param group 0: the optimizer state",
        ),
    ],
    ids=["param-new-shape", "state-data-replaced", "param-data-replaced"],
)
def test_a_parameter_or_state_changed_in_place_stops_the_step_before_any_group_moves(
    backend, index, change, message
):
    opt, params = _stepped(backend)
    change(opt, params[index])
    params[index].grad = torch.zeros_like(params[index])
    snapshot = Snapshot(opt)
    with pytest.raises(RuntimeError, match=message):
        opt.step()
    snapshot.assert_unchanged()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("exp_avg", lambda s: s["exp_avg"].float()),  # float64 parameter, float32 state
        ("exp_avg_sq", lambda s: s["exp_avg_sq"][:3]),
        ("exp_avg", lambda s: torch.empty_like(s["exp_avg"], device="meta")),
        ("step", lambda s: s["step"].double()),
        ("exp_avg", lambda s: s["exp_avg"].tolist()),
    ],
)
def test_a_bad_state_in_a_later_dtype_stops_the_step_before_any_tensor_moves(backend, name, bad):
    """Within one group the float32 tensors would run before the float64 one: nothing may run."""
    opt, params = _stepped(backend)
    state = opt.state[params[2]]
    state[name] = bad(state)
    snapshot = Snapshot(opt)
    with pytest.raises(RuntimeError, match=f"param group 1: the optimizer state {name} of a torch.float64"):
        opt.step()
    snapshot.assert_unchanged()


def test_the_kernel_checks_every_dtype_table_before_it_launches_any():
    """The same guarantee one level down, for callers of the functional step."""
    from superpositional.backends import kernel
    from superpositional.backends.base import StepConfig, StepTensors

    p32, p64 = torch.randn(4), torch.randn(5, dtype=torch.float64)
    before = p32.clone()
    tensors = StepTensors(
        [p32, p64],
        [torch.randn(4), torch.randn(5, dtype=torch.float64)],
        [torch.zeros(4), torch.zeros(5)],  # float32 state for the float64 parameter
        [torch.zeros(4), torch.zeros(5, dtype=torch.float64)],
        [torch.zeros(()), torch.zeros(())],
    )
    config = StepConfig(1e-3, 0.9, 0.999, 1e-8, 0.0, 0.1, False, sp.circuits.paper(4), "paper")
    with pytest.raises(RuntimeError, match=r"exp_avg must be a contiguous torch\.float64"):
        kernel.fused_step(tensors, config)
    assert torch.equal(p32, before) and float(tensors.steps[0]) == 0


# -- 2-4. load_state_dict refuses what it cannot step, before replacing anything -------------------


def _refused(opt, state_dict, match):
    snapshot = Snapshot(opt)
    groups = copy.deepcopy([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups])
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(state_dict)
    snapshot.assert_unchanged()
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == groups
    opt.step()  # and it still steps


@pytest.mark.parametrize("missing", ["exp_avg", "exp_avg_sq", "step"])
def test_a_state_missing_what_a_step_reads_is_refused_naming_parameter_and_key(missing):
    opt, _ = _stepped()
    state_dict = copy.deepcopy(opt.state_dict())
    del state_dict["state"][2][missing]
    _refused(opt, state_dict, rf"the state of parameter 2 has no '{missing}'")


def test_an_sgd_checkpoint_is_refused():
    opt, params = _stepped()
    sgd = torch.optim.SGD([{"params": params[:1]}, {"params": params[1:]}], lr=0.1, momentum=0.9)
    sgd.step()
    _refused(opt, sgd.state_dict(), r"the state of parameter 0 has no 'step' \(it holds 'momentum_buffer'\)")


def test_a_parameter_without_state_starts_fresh():
    opt, params = _stepped()
    state_dict = copy.deepcopy(opt.state_dict())
    del state_dict["state"][1]
    opt.load_state_dict(state_dict)
    assert params[1] not in opt.state
    opt.step()
    assert float(opt.state[params[1]]["step"]) == 1


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (None, "exp_avg of parameter 2 must be a tensor, got NoneType"),
        ([0.0] * 6, "exp_avg of parameter 2 must be a tensor, got list"),
        (np.zeros(6), "exp_avg of parameter 2 must be a tensor, got ndarray"),
        (torch.zeros(6, device="meta"), "exp_avg of parameter 2 is on the meta device"),
        (torch.zeros(6, dtype=torch.int64), "exp_avg of parameter 2 is torch.int64, which does not convert"),
        (torch.zeros(6, dtype=torch.complex64), "exp_avg of parameter 2 is torch.complex64"),
        (torch.zeros(2, 3), r"exp_avg of parameter 2 has shape \[2, 3\]"),
    ],
)
def test_a_refused_value_names_the_problem_and_changes_nothing(value, match):
    opt, _ = _stepped()
    state_dict = copy.deepcopy(opt.state_dict())
    state_dict["state"][2]["exp_avg"] = value
    _refused(opt, state_dict, match)


@pytest.mark.parametrize("step", [-1, -5.0, 0, float("nan"), float("inf"), torch.tensor(-3.0), "7", True])
def test_a_step_counter_must_be_a_positive_finite_number(step):
    opt, _ = _stepped()
    state_dict = copy.deepcopy(opt.state_dict())
    state_dict["state"][0]["step"] = step
    _refused(opt, state_dict, "step of parameter 0 must be")


def test_a_step_counter_as_a_plain_number_loads():
    opt, params = _stepped()
    state_dict = copy.deepcopy(opt.state_dict())
    for entry in state_dict["state"].values():
        entry["step"] = 1  # older checkpoints and other optimizers store ints
    opt.load_state_dict(state_dict)
    opt.step()
    assert all(float(opt.state[p]["step"]) == 2 for p in params)


# -- 5. autograd sees the step's writes -----------------------------------------------------------


DEVICES = ["cpu"] + (["cuda"] if "cuda" in sp.available_backends() else [])


@pytest.mark.parametrize("device", DEVICES)
# Compiled: the kernels' custom op (the torch backend is plain in-place torch ops, whose compiled
# form is inductor's business; torch 2.11's inductor cannot lower its complex statevectors on CUDA).
@pytest.mark.parametrize(("backend", "compiled"), [("auto", False), ("auto", True), ("torch", False)])
def test_a_graph_that_saved_a_parameter_refuses_to_backpropagate_after_a_step(device, backend, compiled):
    torch._dynamo.reset()
    p = torch.nn.Parameter(torch.randn(6, device=device))
    q = torch.nn.Parameter(torch.randn(3, dtype=torch.float64, device=device))
    opt = sp.SuperpositionalAdamW([p, q], backend=backend, coverage="all")
    loss = (p * p).sum() + (q * q).sum()
    loss.backward(retain_graph=True)
    step = torch.compile(opt.step, fullgraph=True) if compiled else opt.step
    versions = [p._version, q._version]
    step()
    assert p._version > versions[0] and q._version > versions[1]
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    torch._dynamo.reset()


# -- the first moment as torch's lerp (found by the property tests) ---------------------------------


@pytest.mark.parametrize("backend", ["cpu", "torch", *(["cuda"] if "cuda" in DEVICES else [])])
@pytest.mark.parametrize("beta1", [0.0, 0.3, 0.5, 0.9])
def test_small_gradients_after_large_ones_step_as_adamw_for_any_beta1(backend, beta1):
    """m + w (g - m) loses a small g against a large m at w = 1 (beta1 = 0); torch's lerp switches
    to g - (g - m)(1 - w) from w = 0.5, and so must the kernels."""
    device = "cuda" if backend == "cuda" else "cpu"
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(64, generator=generator)
    ours = torch.nn.Parameter(start.clone().to(device))
    theirs = torch.nn.Parameter(start.clone().to(device))
    kwargs = dict(lr=0.0625, betas=(beta1, 0.0), eps=0.0, weight_decay=0.0)
    opt = sp.SuperpositionalAdamW([ours], quantum_weight=0.0, backend=backend, **kwargs)
    adamw = torch.optim.AdamW([theirs], **kwargs)
    for scale in (1.0, 1e-4, 1.0, 1e-5):
        g = (scale * torch.randn(64, generator=generator)).to(device)
        ours.grad, theirs.grad = g.clone(), g.clone()
        opt.step()
        adamw.step()
    torch.testing.assert_close(ours, theirs, atol=2e-6, rtol=1e-5)


# -- 6. fork safety ------------------------------------------------------------------------------

FORK_SCRIPT = """
import os, sys, time, torch, superpositional as sp
rows = int(sys.argv[1])
c = sp.circuits.entangled(4)
sp.simulate(c, torch.rand(rows, 4), torch.rand(rows, 4))
p = torch.nn.Parameter(torch.randn(rows))
p.grad = torch.randn(rows)
sp.SuperpositionalAdamW([p], coverage="all", circuit=c).step()
pid = os.fork()
if pid == 0:
    torch.rand(1 << 20).sin_()  # an ordinary torch op, large enough for torch's own OpenMP team
    e = sp.simulate(c, torch.rand(rows, 4), torch.rand(rows, 4))
    sp.SuperpositionalAdamW([p], coverage="all", circuit=c).step()
    os._exit(0 if torch.isfinite(e).all() else 3)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(os.waitstatus_to_exitcode(status))
    time.sleep(0.05)
os.kill(pid, 9)
sys.exit("the forked child hung")
"""


@pytest.mark.parametrize("rows", [1, 10, 200_000], ids=["tiny", "small", "large"])
def test_a_forked_child_runs_torch_and_our_kernels_after_work_in_the_parent(rows):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, str(rows)], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]


# -- 8. constant angles beyond float32 -----------------------------------------------------------


@pytest.mark.parametrize(
    "circuit",
    [
        sp.Circuit(1).rx(0, 1e39),
        sp.Circuit(2).h(0).cx(0, 1).rx(1, 1e39).ry(0, sp.param(0)),  # a statevector program
        sp.Circuit(1).ry(0, sp.param(0, offset=-3e38)).observe(["X"]),
        sp.Circuit(2)
        .rz(0, 1e300)
        .h(0)
        .ry(1, sp.grad(1, scale=2.0, offset=5e38))
        .cz(0, 1)
        .observe(["X", "Y"]),
    ],
)
@pytest.mark.parametrize("backend", ["cpu", "torch"] + (["cuda"] if "cuda" in DEVICES else []))
def test_angles_beyond_float32_give_the_float64_answer_in_float32(circuit, backend):
    rows = torch.rand(5, circuit.n_qubits, dtype=torch.float64)
    exact = sp.simulate(circuit, rows, rows, backend="torch")
    assert torch.isfinite(exact).all()
    device = "cuda" if backend == "cuda" else "cpu"
    got = sp.simulate(circuit, rows.float().to(device), rows.float().to(device), backend=backend)
    torch.testing.assert_close(got.double().cpu(), exact, atol=1e-5, rtol=0)
    rows = rows.to(device)
    torch.testing.assert_close(
        sp.simulate(circuit, rows, rows, backend=backend).cpu(), exact, atol=1e-12, rtol=0
    )


# -- 10. small ones ------------------------------------------------------------------------------


@pytest.mark.parametrize("observable", ["Z\n", " Z", "X ", "-Y\t", "+\nZ"])
def test_observables_with_whitespace_are_refused(observable):
    with pytest.raises(ValueError, match="observable of qubit 0 must be X, Y or Z"):
        sp.Circuit(1).observe([observable])


# -- 9. busy machines ----------------------------------------------------------------------------


def test_heavy_commands_rerun_with_passive_openmp_threads_only_on_a_busy_machine(monkeypatch):
    import os

    from superpositional.apps import cli

    cpus = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (cpus + 4.0, 1.0, 1.0))
    environ = cli.passive_rerun("demo", {"PATH": "/bin"})
    assert environ == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE"}
    assert cli.passive_rerun("info", {}) is None  # a light command
    assert cli.passive_rerun("bench", {"OMP_WAIT_POLICY": "ACTIVE"}) is None  # the user's choice
    assert "this machine is busy" in cli.busy_note()
    monkeypatch.setattr(os, "getloadavg", lambda: (cpus - 0.5, 1.0, 1.0))
    assert cli.passive_rerun("demo", {}) is None and cli.busy_note() is None
