"""The CUDA kernels against the CPU kernel and the torch reference (DESIGN.md 5); skipped without a GPU."""

from __future__ import annotations

import io
import math

import pytest
import torch

import superpositional as sp
from superpositional.testing import max_phase_aligned_error, random_circuit

pytestmark = pytest.mark.skipif("cuda" not in sp.available_backends(), reason="no CUDA device or CUDA build")

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
STEP_TOL = {
    torch.float32: dict(atol=2e-6, rtol=1e-5),
    torch.float64: dict(atol=1e-13, rtol=1e-12),
    torch.bfloat16: dict(atol=2e-2, rtol=2e-2),
    torch.float16: dict(atol=3e-3, rtol=3e-3),
}


def _uniform(rng, shape, dtype, spread=math.pi, device="cuda"):
    return torch.as_tensor(rng.uniform(-spread, spread, size=shape), dtype=torch.float64).to(device, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", range(1, 11))
def test_simulate_matches_cpu_kernel_and_reference(dtype, n, rng):
    for _ in range(3):
        c = random_circuit(n, int(rng.integers(1, 40)), rng)
        batch = int(rng.choice([1, 3, 257, 1025]))
        theta, g = _uniform(rng, (batch, n), dtype), _uniform(rng, (batch, n), dtype)
        expected, state_ref = sp.simulate(c, theta.cpu(), g.cpu(), backend="torch", return_state=True)
        cpu = sp.simulate(c, theta.cpu(), g.cpu(), backend="cpu")
        got = sp.simulate(c, theta, g, backend="cuda")
        got_state_path, state = sp.simulate(c, theta, g, backend="cuda", return_state=True)
        assert got.device.type == "cuda" and got.dtype == dtype
        torch.testing.assert_close(got.cpu(), expected, atol=TOL[dtype], rtol=0)
        torch.testing.assert_close(got.cpu(), cpu, atol=TOL[dtype], rtol=0)
        torch.testing.assert_close(got_state_path.cpu(), expected, atol=TOL[dtype], rtol=0)
        assert max_phase_aligned_error(state.cpu(), state_ref) <= TOL[dtype]


@pytest.mark.parametrize("preset", ["paper", "entangled"])
def test_presets_at_odd_batches_and_strides(preset, rng):
    for n in (1, 4, 8):
        c = getattr(sp.circuits, preset)(n)
        for batch in (1, 3, 4097):
            wide = _uniform(rng, (batch, 3 * n), torch.float32)
            theta, g = wide[:, ::3], _uniform(rng, (n, batch), torch.float32).t()
            expected = sp.simulate(c, theta.cpu().contiguous(), g.cpu().contiguous(), backend="torch")
            got = sp.simulate(c, theta, g, backend="cuda")
            torch.testing.assert_close(got.cpu(), expected, atol=1e-5, rtol=0)


def test_auto_picks_cuda_for_cuda_tensors():
    theta = torch.rand(5, 4, device="cuda")
    assert sp.backends.resolve("auto", theta.device) == "cuda"
    got = sp.simulate(sp.circuits.paper(4), theta)
    torch.testing.assert_close(got, torch.sin(math.pi * theta), atol=1e-6, rtol=0)


def test_every_output_is_written(rng):
    from superpositional._extension import extension
    from superpositional.backends.kernel import device_program

    ext = extension()
    for n, batch in [(1, 1), (4, 4097), (9, 33)]:
        c = random_circuit(n, 15, rng)
        theta = _uniform(rng, (batch, n), torch.float32)
        out = torch.full((batch, n), float("nan"), device="cuda")
        state = torch.full((batch, 2**n), complex("nan"), dtype=torch.complex64, device="cuda")
        program = c.program(keep_state=True)
        ext.simulate_cuda(
            program,
            device_program(c, theta.device, True).data_ptr(),
            theta.data_ptr(),
            theta.stride(),
            theta.data_ptr(),
            theta.stride(),
            out.data_ptr(),
            state.data_ptr(),
            batch,
            "float32",
            torch.cuda.current_stream().cuda_stream,
        )
        torch.cuda.synchronize()
        assert torch.isfinite(out).all() and torch.isfinite(torch.view_as_real(state)).all()


def _params(rng, dtype, shapes, device="cuda"):
    return [
        torch.nn.Parameter(torch.as_tensor(rng.normal(size=s), dtype=torch.float64).to(device, dtype))
        for s in shapes
    ]


def _set_grads(rng, *param_lists):
    for group in zip(*param_lists):
        g = torch.as_tensor(rng.normal(size=group[0].shape), dtype=torch.float64)
        for p in group:
            p.grad = g.to(p.device, p.dtype)


SHAPES = [(), (1,), (3,), (4097,), (7, 5), (6, 4), (3, 4, 5), (64, 1024)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    ("preset", "coverage"),
    [("paper", "paper"), ("paper", "all"), ("entangled", "all"), ("entangled", "paper"), ("random", "all")],
)
def test_step_matches_cpu_kernel_and_torch_backend(dtype, preset, coverage, rng):
    n = int(rng.choice([3, 4]))
    circuit = random_circuit(n, 14, rng) if preset == "random" else getattr(sp.circuits, preset)(n)
    kwargs = dict(lr=1e-2, weight_decay=0.1, quantum_weight=0.7, circuit=circuit, coverage=coverage)
    gpu = _params(rng, dtype, SHAPES)
    cpu = [torch.nn.Parameter(p.detach().cpu()) for p in gpu]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in gpu]
    opt_gpu = sp.SuperpositionalAdamW(gpu, backend="cuda", **kwargs)
    opt_cpu = sp.SuperpositionalAdamW(cpu, backend="cpu", **kwargs)
    opt_ref = sp.SuperpositionalAdamW(ref, backend="torch", **kwargs)
    for step in range(10):
        if step == 5:  # a state_dict round trip in the middle of the run
            buffer = io.BytesIO()
            torch.save(opt_gpu.state_dict(), buffer)
            buffer.seek(0)
            opt_gpu = sp.SuperpositionalAdamW(gpu, backend="cuda", **kwargs)
            opt_gpu.load_state_dict(torch.load(buffer, weights_only=False))
        _set_grads(rng, gpu, cpu, ref)
        opt_gpu.step()
        opt_cpu.step()
        opt_ref.step()
    for a, b, c in zip(gpu, cpu, ref):
        torch.testing.assert_close(a.detach().cpu().double(), b.detach().double(), **STEP_TOL[dtype])
        torch.testing.assert_close(a.detach().cpu().double(), c.detach().cpu().double(), **STEP_TOL[dtype])
    assert float(opt_gpu.state[gpu[0]]["step"]) == 10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quantum_weight_zero_is_torch_fused_adamw(dtype, rng):
    ours = _params(rng, dtype, SHAPES)
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    kwargs = dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)
    opt_ours = sp.SuperpositionalAdamW(ours, quantum_weight=0.0, **kwargs)
    opt_theirs = torch.optim.AdamW(theirs, fused=True, **kwargs)
    for _ in range(50):
        _set_grads(rng, ours, theirs)
        opt_ours.step()
        opt_theirs.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, **STEP_TOL[dtype])


def test_many_tensors_of_mixed_sizes_in_few_launches(rng):
    # More tensors than one launch takes (128), of mixed sizes and row lengths.
    shapes = [(int(rng.integers(1, 3000)),) for _ in range(150)] + [
        (int(rng.integers(1, 50)), 7) for _ in range(150)
    ]
    kwargs = dict(quantum_weight=0.4, circuit=sp.circuits.entangled(4), coverage="all", lr=1e-2)
    gpu = _params(rng, torch.float32, shapes)
    ref = [torch.nn.Parameter(p.detach().cpu()) for p in gpu]
    opt_gpu = sp.SuperpositionalAdamW(gpu, **kwargs)
    opt_ref = sp.SuperpositionalAdamW(ref, backend="cpu", **kwargs)
    for _ in range(4):
        _set_grads(rng, gpu, ref)
        opt_gpu.step()
        opt_ref.step()
    for a, b in zip(gpu, ref):
        torch.testing.assert_close(a.detach().cpu(), b.detach(), **STEP_TOL[torch.float32])


def test_graph_replay_equals_eager(rng):
    kwargs = dict(quantum_weight=0.5, circuit=sp.circuits.entangled(4), coverage="all")
    shapes = [(256, 64), (1000,), (5, 3)]
    eager = _params(rng, torch.float32, shapes)
    graphed = [torch.nn.Parameter(p.detach().clone()) for p in eager]
    grads = [
        [torch.as_tensor(rng.normal(size=s), dtype=torch.float32).cuda() for s in shapes] for _ in range(6)
    ]
    opt_eager = sp.SuperpositionalAdamW(eager, lr=torch.tensor(1e-2, device="cuda"), **kwargs)
    opt_graph = sp.SuperpositionalAdamW(graphed, lr=torch.tensor(1e-2, device="cuda"), **kwargs)
    static_grads = [torch.zeros_like(p) for p in graphed]
    for p, g in zip(graphed, static_grads):
        p.grad = g
    # Warm up on a side stream (creates the states and uploads the program), then capture one step.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for g, src in zip(static_grads, grads[0]):
            g.copy_(src)
        opt_graph.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt_graph.step()
    for p, g in zip(eager, grads[0]):
        p.grad = g.clone()
    opt_eager.step()
    for step in range(1, 6):
        # A schedule changes the learning rate in place; the graph reads it from device memory at replay.
        opt_eager.param_groups[0]["lr"].fill_(1e-2 * 0.9**step)
        opt_graph.param_groups[0]["lr"].fill_(1e-2 * 0.9**step)
        for g, src in zip(static_grads, grads[step]):
            g.copy_(src)
        graph.replay()
        for p, g in zip(eager, grads[step]):
            p.grad = g.clone()
        opt_eager.step()
    torch.cuda.synchronize()
    for a, b in zip(eager, graphed):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert float(opt_graph.state[graphed[0]]["step"]) == 6


def test_step_allocates_nothing_after_the_first(rng):
    params = _params(rng, torch.float32, [(1024, 1024), (4097,)])
    opt = sp.SuperpositionalAdamW(
        params, quantum_weight=0.5, circuit=sp.circuits.entangled(4), coverage="all"
    )
    _set_grads(rng, params)
    opt.step()  # creates exp_avg, exp_avg_sq and the device program
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(3):
        opt.step()
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == before
    assert torch.cuda.max_memory_allocated() == before
