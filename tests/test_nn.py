"""Quantum Attention, the Quantum Transformer and the demo: gradients, learning, the command's outputs."""

from __future__ import annotations

import json
import math

import pytest
import torch

import superpositional as sp
from superpositional.apps import demo
from superpositional.apps.cli import main as cli
from superpositional.nn import QuantumAttention, QuantumTransformer


def test_attention_circuit_term_matches_the_torch_reference(rng):
    layer = QuantumAttention(16, 2, n_qubits=3).double()
    scores = torch.tensor(rng.normal(size=(2, 2, 5, 5)))
    n = 3
    theta = layer.theta[None, :, None, None, :] + scores[..., None]
    phi = layer.phi[None, :, None, None, :].expand_as(theta)
    expected = sp.simulate(layer.circuit, theta, phi, backend="torch").sum(-1)
    torch.testing.assert_close(layer.circuit_term(scores), expected, atol=1e-12, rtol=0)
    assert layer.circuit.n_qubits == n


def test_attention_gradients_match_the_torch_backend(rng):
    torch.manual_seed(int(rng.integers(2**31)))
    kernel = QuantumAttention(16, 2, backend="cpu").double()
    reference = QuantumAttention(16, 2, backend="torch").double()
    reference.load_state_dict(kernel.state_dict())
    x = torch.tensor(rng.normal(size=(3, 6, 16)), requires_grad=True)
    for module in (kernel, reference):
        module(x).square().sum().backward()
    for (name, a), (_, b) in zip(kernel.named_parameters(), reference.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-10, rtol=1e-8, msg=name)
    assert kernel.theta.grad.abs().sum() > 0 and kernel.phi.grad.abs().sum() > 0


def test_attention_gradcheck(rng):
    layer = QuantumAttention(8, 2, n_qubits=2).double()
    x = torch.tensor(rng.normal(size=(1, 3, 8)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: layer(inp), (x,))


def test_classical_attention_has_no_circuit_term(rng):
    layer = QuantumAttention(8, 2, quantum=False)
    x = torch.tensor(rng.normal(size=(2, 4, 8)), dtype=torch.float32)
    layer(x).sum().backward()
    assert layer.theta.grad is None


def test_bad_width_is_refused():
    with pytest.raises(ValueError, match="divisible"):
        QuantumAttention(10, 4)


def test_a_tiny_run_learns():
    # Loss falls well below chance (ln 2) on the demo's task within a few epochs.
    task = demo.TaskConfig(length=8, vocab=6, train=512, test=256)
    data = (demo.make_task(task, task.train, 1, 0.0), demo.make_task(task, task.test, 2, 0.0))
    run = demo.train_one("sp-adamw-0.5", 0, 6, task, torch.device("cpu"), data)
    assert run.loss[-1] < 0.5 * math.log(2)
    assert run.accuracy[-1] > 0.85


def test_task_is_balanced_and_markers_are_unique():
    task = demo.TaskConfig()
    tokens, labels = demo.make_task(task, 2000, seed=3, noise=0.0)
    assert ((tokens == 0).sum(1) == 1).all() and ((tokens == 1).sum(1) == 1).all()
    first = (tokens == 0).float().argmax(1)
    second = (tokens == 1).float().argmax(1)
    assert torch.equal(labels, (first < second).long())
    assert 0.45 < labels.float().mean() < 0.55


def test_demo_command_writes_table_json_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    status = cli(
        ["demo", "--seeds", "2", "--epochs", "1", "--arms", "adam", "sp-adamw-0.5", "--out", str(tmp_path)]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "final acc %" in printed and "sp-adamw-0.5" in printed
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["seeds"] == 2 and len(result["runs"]) == 4
    assert set(result["summary"]) == {"adam", "sp-adamw-0.5"}
    assert (tmp_path / "learning_curves.png").stat().st_size > 1000


def test_transformer_shapes():
    model = QuantumTransformer(vocab_size=7, num_classes=3, max_length=5, embed_dim=16, num_heads=2, ff_dim=8)
    assert model(torch.randint(0, 7, (4, 5))).shape == (4, 3)
