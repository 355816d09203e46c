"""torch.compile: the fused step is a custom op, so a compiled ``optimizer.step`` has no graph break."""

from __future__ import annotations

import sys

import pytest
import torch

import superpositional as sp
from superpositional.optim import ops

# The kernel of each device the op dispatches to: the CPU kernel everywhere, CUDA where a GPU is.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() and "cuda" in sp.available_backends() else [])


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test compiles optimizer.step of a new optimizer: without a reset, Dynamo's cache entries of
    the earlier tests' (freed) optimizers count toward its recompile limit, and fullgraph=True raises."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _model_and_optimizer(seed, coverage, lr, device="cpu", amsgrad=False):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).to(device)
    optimizer = sp.SuperpositionalAdamW(
        model.parameters(),
        lr=lr,
        amsgrad=amsgrad,
        quantum_weight=0.5,
        circuit=sp.circuits.entangled(4),
        coverage=coverage,
    )
    return model, optimizer


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("coverage", ["paper", "all"])
@pytest.mark.parametrize(("tensor_lr", "amsgrad"), [(False, False), (True, False), (False, True)])
def test_compiled_step_has_no_graph_break_and_equals_eager(device, coverage, tensor_lr, amsgrad, rng):
    seed = int(rng.integers(2**31))
    lr = torch.tensor(0.01, device=device) if tensor_lr else 0.01
    eager_model, eager = _model_and_optimizer(
        seed, coverage, lr.clone() if tensor_lr else lr, device, amsgrad
    )
    model, optimizer = _model_and_optimizer(seed, coverage, lr, device, amsgrad)
    graphs = []

    def record(graph_module, example_inputs):
        graphs.append(str(graph_module.graph))
        return graph_module.forward

    compiled = torch.compile(optimizer.step, backend=record, fullgraph=True)  # fullgraph: a break raises
    x = torch.tensor(rng.normal(size=(5, 8)), dtype=torch.float32, device=device)
    for _ in range(4):
        for m, step in ((eager_model, eager.step), (model, compiled)):
            m.zero_grad()
            m(x).square().sum().backward()
            step()
    assert any("superpositional.fused_step" in g for g in graphs)
    for a, b in zip(eager_model.parameters(), model.parameters()):
        assert torch.equal(a, b)  # the same kernel, eager or compiled
    assert float(optimizer.state[next(model.parameters())]["step"]) == 4


@pytest.mark.parametrize("device", DEVICES)
def test_a_whole_training_step_compiles_with_inductor(device, rng):
    """What a user writes: forward, backward and step in one compiled function, default backend."""
    seed = int(rng.integers(2**31))
    eager_model, eager = _model_and_optimizer(seed, "all", 0.01, device)
    model, optimizer = _model_and_optimizer(seed, "all", 0.01, device)
    x = torch.tensor(rng.normal(size=(5, 8)), dtype=torch.float32, device=device)

    def train_step(m, opt):
        opt.zero_grad()
        loss = m(x).square().sum()
        loss.backward()
        opt.step()
        return loss

    compiled = torch.compile(train_step)
    for _ in range(3):
        expected, got = train_step(eager_model, eager), compiled(model, optimizer)
        # Inductor fuses the forward and backward differently from eager, so parameters differ by
        # rounding; the step itself is the same kernel on the same inputs.
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for a, b in zip(eager_model.parameters(), model.parameters()):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_the_step_compiles_whole_without_qiskit(monkeypatch, rng):
    """Qiskit is optional: without it the traced step must not try to import it (Dynamo cannot trace
    an import, so fullgraph=True would raise)."""
    from superpositional.backends import aer

    for name in ("qiskit", "qiskit_aer"):
        monkeypatch.setitem(sys.modules, name, None)  # `import qiskit` now raises ImportError
    monkeypatch.setattr(aer, "_AVAILABLE", None)
    assert "aer" not in sp.available_backends()
    model, optimizer = _model_and_optimizer(int(rng.integers(2**31)), "all", 0.01)
    model(torch.ones(2, 8)).sum().backward()
    torch.compile(optimizer.step, fullgraph=True)()
    assert float(optimizer.state[next(model.parameters())]["step"]) == 1


@pytest.mark.parametrize("amsgrad", [False, True])
def test_the_op_passes_opcheck(rng, amsgrad):
    params = [torch.tensor(rng.normal(size=s), dtype=torch.float32) for s in [(3, 5), (7,)]]
    grads = [torch.randn_like(p) for p in params]
    states = [torch.zeros_like(p) for p in params]
    circuit = sp.circuits.entangled(4)
    args = (
        params,
        grads,
        states,
        [torch.rand_like(p) for p in params],
        [torch.zeros(()) for _ in params],
        [torch.rand_like(p) for p in params] if amsgrad else [],
        [0, 1],  # the rounding streams (unused: float32 parameters are never rounded stochastically)
        1e-3,
        None,
        0.9,
        0.999,
        1e-8,
        0.01,
        0.5,
        False,
        amsgrad,
        True,
        12345,
        True,  # the preconditioned perturbation
        ops.register(circuit),
        "all",
    )
    torch.library.opcheck(torch.ops.superpositional.fused_step.default, args)


def test_register_is_idempotent_and_copies_get_their_own_key():
    import copy

    circuit = sp.circuits.paper(4)
    key = ops.register(circuit)
    assert ops.register(circuit) == key == ops.circuit_key(circuit)
    twin = copy.deepcopy(circuit)
    assert ops.register(twin) != key
