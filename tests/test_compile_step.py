"""torch.compile: the fused step is a custom op, so a compiled ``optimizer.step`` has no graph break."""

from __future__ import annotations

import pytest
import torch

import superpositional as sp
from superpositional import ops


def _model_and_optimizer(seed, coverage, lr):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    optimizer = sp.SuperpositionalAdamW(
        model.parameters(), lr=lr, quantum_weight=0.5, circuit=sp.circuits.entangled(4), coverage=coverage
    )
    return model, optimizer


@pytest.mark.parametrize("coverage", ["paper", "all"])
@pytest.mark.parametrize("tensor_lr", [False, True])
def test_compiled_step_has_no_graph_break_and_equals_eager(coverage, tensor_lr, rng):
    seed = int(rng.integers(2**31))
    lr = torch.tensor(0.01) if tensor_lr else 0.01
    eager_model, eager = _model_and_optimizer(seed, coverage, lr.clone() if tensor_lr else lr)
    model, optimizer = _model_and_optimizer(seed, coverage, lr)
    graphs = []

    def record(graph_module, example_inputs):
        graphs.append(str(graph_module.graph))
        return graph_module.forward

    compiled = torch.compile(optimizer.step, backend=record, fullgraph=True)  # fullgraph: a break raises
    x = torch.tensor(rng.normal(size=(5, 8)), dtype=torch.float32)
    for _ in range(4):
        for m, step in ((eager_model, eager.step), (model, compiled)):
            m.zero_grad()
            m(x).square().sum().backward()
            step()
    assert any("superpositional.fused_step" in g for g in graphs)
    for a, b in zip(eager_model.parameters(), model.parameters()):
        assert torch.equal(a, b)  # the same kernel, eager or compiled
    assert float(optimizer.state[next(model.parameters())]["step"]) == 4


def test_the_op_passes_opcheck(rng):
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
        1e-3,
        None,
        0.9,
        0.999,
        1e-8,
        0.01,
        0.5,
        False,
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
