"""The CUDA kernels against the CPU kernel and the torch reference (docs/design.md, *Validation*);
skipped without a GPU."""

from __future__ import annotations

import io
import math

import pytest
import torch

import superpositional as sp
from superpositional.testing import max_phase_aligned_error, random_circuit, random_product_circuit

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


def _entangled_with_clifford_tail(n, rng):
    """A program that keeps its statevector (rotations after a CNOT chain) and whose observables
    are Pauli strings over several qubits, Y factors included (a Clifford tail moved into them)."""
    c = sp.Circuit(n)
    for q in range(n):
        c.h(q)
        c.ry(q, sp.param(q, math.pi))
    for q in range(n - 1):
        c.cx(q, q + 1)
    for q in range(n):
        c.rx(q, sp.grad(q, float(rng.uniform(-2, 2)), float(rng.uniform(-1, 1))))
    for _ in range(3 * n):
        kind = ("h", "x", "cx", "cz")[int(rng.integers(4))]
        if kind in ("cx", "cz"):
            a, b = rng.choice(n, size=2, replace=False)
            getattr(c, kind)(int(a), int(b))
        else:
            getattr(c, kind)(int(rng.integers(n)))
    return c.observe([("-" if rng.integers(2) else "") + p for p in rng.choice(list("XYZ"), size=n)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_statevector_programs_at_group_boundaries_and_strides(dtype, rng):
    # From 6 qubits a circuit's amplitudes spread over a group of 2^(n-5) lanes of a warp; a warp
    # then holds 32 / 2^(n-5) circuits, so batches around those counts end inside a warp.
    strings = 0
    for n in (4, 5, 6, 7, 8, 9, 10):
        c = _entangled_with_clifford_tail(n, rng)
        program = c.program()
        assert not program.product_only
        strings += sum(bin(x | z).count("1") > 1 and x != 0 for x, z, _ in program.observables)
        for batch in (1, 2, 3, 5, 31, 33, 4097):
            wide = _uniform(rng, (batch, 3 * n), dtype)
            theta, g = wide[:, 1::3], _uniform(rng, (n, batch), dtype).t()
            expected, state_ref = sp.simulate(
                c, theta.cpu().contiguous(), g.cpu().contiguous(), backend="torch", return_state=True
            )
            got = sp.simulate(c, theta, g, backend="cuda")
            torch.testing.assert_close(got.cpu(), expected, atol=TOL[dtype], rtol=0)
            got_with_state, state = sp.simulate(c, theta, g, backend="cuda", return_state=True)
            torch.testing.assert_close(got_with_state.cpu(), expected, atol=TOL[dtype], rtol=0)
            assert max_phase_aligned_error(state.cpu(), state_ref) <= TOL[dtype]
    assert strings >= 7, "the tails should leave multi-qubit strings with X or Y factors"


def test_auto_picks_cuda_for_cuda_tensors():
    theta = torch.rand(5, 4, device="cuda")
    assert sp.backends.resolve("auto", theta.device).name == "cuda"
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
            ext.DType.float32,
            torch.cuda.current_stream().cuda_stream,
        )
        torch.cuda.synchronize()
        assert torch.isfinite(out).all() and torch.isfinite(torch.view_as_real(state)).all()


# -- gradients: the CUDA adjoint kernel ------------------------------------------------------------


def _with_inputs(rng, n, n_gates, make=random_circuit):
    """A random circuit with at least one input angle (else there is no gradient to compare)."""
    while True:
        c = make(n, n_gates, rng)
        if c.uses_params or c.uses_grads:
            return c


def _input_gradients(circuit, theta, g, weights, backend):
    theta = theta.detach().requires_grad_()
    g = g.detach().requires_grad_()
    (sp.simulate(circuit, theta, g, backend=backend) * weights).sum().backward()
    return [t.grad if t.grad is not None else torch.zeros_like(t) for t in (theta, g)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", range(1, 11))
def test_adjoint_matches_cpu_kernel_and_autograd_through_the_reference(dtype, n, rng):
    tol = {torch.float32: 1e-4, torch.float64: 1e-12}[dtype]
    for _ in range(2):
        c = _with_inputs(rng, n, int(rng.integers(1, 30)))
        got = _adjoint_against_cpu_and_reference(c, int(rng.choice([1, 5, 300])), dtype, tol, rng)
        assert all(a.device.type == "cuda" and a.dtype == dtype for a in got)


def _adjoint_against_cpu_and_reference(circuit, batch, dtype, tol, rng):
    """The CUDA adjoint's input gradients, checked against the CPU kernel and against autograd
    through the float64 torch reference on the CPU (independent gate math, autograd's own chain rule)."""
    n = circuit.n_qubits
    theta, g = _uniform(rng, (batch, n), dtype), _uniform(rng, (batch, n), dtype)
    weights = _uniform(rng, (batch, n), dtype, spread=1.0)
    got = _input_gradients(circuit, theta, g, weights, "cuda")
    cpu = _input_gradients(circuit, theta.cpu(), g.cpu(), weights.cpu(), "cpu")
    reference = _input_gradients(
        circuit, theta.cpu().double(), g.cpu().double(), weights.cpu().double(), "torch"
    )
    for a, b, r in zip(got, cpu, reference):
        torch.testing.assert_close(a.cpu().double(), r, atol=tol, rtol=0)
        torch.testing.assert_close(a.cpu(), b, atol=tol, rtol=0)
    return got


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", range(1, 11))
def test_product_adjoint_matches_cpu_kernel_and_autograd_through_the_reference(dtype, n, rng):
    # Product programs take the per-qubit adjoint (registers only) instead of the statevector sweep.
    tol = {torch.float32: 1e-4, torch.float64: 1e-12}[dtype]
    for _ in range(3):
        c = _with_inputs(rng, n, int(rng.integers(1, 6 * n)), random_product_circuit)
        assert c.program().product_only
        _adjoint_against_cpu_and_reference(c, int(rng.choice([1, 7, 1000])), dtype, tol, rng)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_product_programs_at_lane_boundaries_and_strides(dtype, rng):
    # Small float32 product programs run two circuits per thread (lanes.cuh), rows 32 apart: batches
    # around multiples of 32 and 64 end inside a thread, and 1.1e6 rows wrap the grid-stride loop
    # (the grid holds 132 * 16 * 256 threads on an H200).
    tol = {torch.float32: 1e-4, torch.float64: 1e-12}[dtype]
    for n in (1, 2, 4, 5):
        c = _with_inputs(rng, n, 4 * n, random_product_circuit)
        assert c.program().product_only
        for batch in (1, 31, 32, 33, 63, 65, 4097) + ((1_100_001,) if n == 4 else ()):
            theta = _uniform(rng, (batch, 2 * n), dtype)[:, ::2]  # strided rows take the scalar loads
            g = _uniform(rng, (n, batch), dtype).t()
            weights = _uniform(rng, (batch, n), dtype, spread=1.0)
            expected = sp.simulate(c, theta.cpu(), g.cpu(), backend="cpu")
            for t, u in ((theta, g), (theta.contiguous(), g.contiguous())):
                got = sp.simulate(c, t, u, backend="cuda")
                torch.testing.assert_close(got.cpu(), expected, atol=TOL[dtype], rtol=0)
                got_grads = _input_gradients(c, t, u, weights, "cuda")
                cpu_grads = _input_gradients(c, t.cpu(), u.cpu(), weights.cpu(), "cpu")
                for a, b in zip(got_grads, cpu_grads):
                    torch.testing.assert_close(a.cpu(), b, atol=tol, rtol=0)


def test_adjoint_against_finite_differences_on_strided_inputs(rng):
    c = sp.circuits.entangled(4)
    wide = _uniform(rng, (6, 8), torch.float64)
    theta, g = wide[:, ::2], _uniform(rng, (4, 6), torch.float64).t()  # neither is contiguous
    weights = _uniform(rng, (6, 4), torch.float64, spread=1.0)
    analytic = _input_gradients(c, theta, g, weights, "cuda")
    step = 1e-6
    for position, inputs in enumerate(((theta, g), (g, theta))):
        numeric = torch.zeros(6, 4, dtype=torch.float64)
        for index in range(24):
            bump = torch.zeros(24, dtype=torch.float64, device="cuda")
            bump[index] = step
            bump = bump.view(6, 4)
            varied = [inputs[0] + bump, inputs[0] - bump]
            values = [
                (
                    sp.simulate(c, *((v, inputs[1]) if position == 0 else (inputs[1], v)), backend="cuda")
                    * weights
                )
                .sum()
                .item()
                for v in varied
            ]
            numeric.view(-1)[index] = (values[0] - values[1]) / (2 * step)
        torch.testing.assert_close(analytic[position].cpu(), numeric, atol=1e-8, rtol=0)


def test_attention_layer_on_cuda_matches_the_cpu(rng):
    from superpositional.nn import QuantumAttention

    torch.manual_seed(int(rng.integers(2**31)))
    cpu_layer = QuantumAttention(16, 2).double()
    cuda_layer = QuantumAttention(16, 2).double().cuda()
    cuda_layer.load_state_dict(cpu_layer.state_dict())
    x = torch.tensor(rng.normal(size=(3, 6, 16)))
    x_cpu, x_cuda = x.clone().requires_grad_(), x.cuda().requires_grad_()
    cpu_layer(x_cpu).square().sum().backward()
    cuda_layer(x_cuda).square().sum().backward()
    torch.testing.assert_close(x_cuda.grad.cpu(), x_cpu.grad, atol=1e-10, rtol=1e-8)
    for (name, a), (_, b) in zip(cuda_layer.named_parameters(), cpu_layer.named_parameters()):
        torch.testing.assert_close(a.grad.cpu(), b.grad, atol=1e-10, rtol=1e-8, msg=name)


def test_backward_writes_every_output_and_nothing_else(rng):
    from superpositional.backends.base import Batch
    from superpositional.backends.kernel import simulate_backward

    def batch(theta, g):
        return Batch(theta, g, theta.shape[0], theta.dtype, theta.device)

    for n in (3, 4, 7):
        c = _with_inputs(rng, n, 20)
        theta, g = _uniform(rng, (1031, n), torch.float32), _uniform(rng, (1031, n), torch.float32)
        weights = _uniform(rng, (1031, n), torch.float32, spread=1.0)
        expected, _ = simulate_backward(
            c, batch(theta.cpu(), g.cpu()), weights.cpu(), want_params=True, want_grads=False
        )
        # Free a NaN-filled block of the output's size: the caching allocator hands it to the kernel's output.
        poison = torch.full((1031, n), float("nan"), device="cuda")
        del poison
        d_theta, d_g = simulate_backward(c, batch(theta, g), weights, want_params=True, want_grads=False)
        assert d_g is None and d_theta.shape == (1031, n)
        torch.testing.assert_close(d_theta.cpu(), expected, atol=1e-4, rtol=0)


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


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    ("preset", "coverage"),
    [("paper", "paper"), ("paper", "all"), ("entangled", "all"), ("entangled", "paper"), ("random", "all")],
)
def test_step_matches_cpu_kernel_and_torch_backend(dtype, preset, coverage, amsgrad, rng):
    n = int(rng.choice([3, 4]))
    circuit = random_circuit(n, 14, rng) if preset == "random" else getattr(sp.circuits, preset)(n)
    kwargs = dict(
        lr=1e-2, weight_decay=0.1, quantum_weight=0.7, circuit=circuit, coverage=coverage, amsgrad=amsgrad
    )
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
        if step % 3 == 1:  # smaller gradients now and then, so that AMSGrad's maximum matters
            for p in (*gpu, *cpu, *ref):
                p.grad.mul_(0.1)
        opt_gpu.step()
        opt_cpu.step()
        opt_ref.step()
    for a, b, c in zip(gpu, cpu, ref):
        torch.testing.assert_close(a.detach().cpu().double(), b.detach().double(), **STEP_TOL[dtype])
        torch.testing.assert_close(a.detach().cpu().double(), c.detach().cpu().double(), **STEP_TOL[dtype])
    assert float(opt_gpu.state[gpu[0]]["step"]) == 10
    if amsgrad:
        for a, b in zip(gpu, cpu):
            torch.testing.assert_close(
                opt_gpu.state[a]["max_exp_avg_sq"].cpu(),
                opt_cpu.state[b]["max_exp_avg_sq"],
                # The GPU rounds 1 - beta2 to the math type, as torch's fused CUDA AdamW does (relative
                # error up to 2^-24 / (1 - 0.999) = 6e-5 in float32); the CPU rounds it from double.
                rtol=1e-12 if dtype == torch.float64 else 6e-5,
                atol=0,
            )


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
@pytest.mark.parametrize("coverage", ["paper", "all"])
def test_complex_parameters_step_as_on_the_cpu(dtype, coverage, rng):
    kwargs = dict(
        lr=1e-2, quantum_weight=0.7, circuit=sp.circuits.entangled(4), coverage=coverage, amsgrad=True
    )
    shapes = [(), (5,), (7, 3), (2, 3, 4)]

    def complex_normal(shape):
        return torch.view_as_complex(torch.as_tensor(rng.normal(size=(*shape, 2))).to(dtype.to_real()))

    cpu = [torch.nn.Parameter(complex_normal(s)) for s in shapes]
    gpu = [torch.nn.Parameter(p.detach().cuda()) for p in cpu]
    opt_gpu = sp.SuperpositionalAdamW(gpu, **kwargs)
    opt_cpu = sp.SuperpositionalAdamW(cpu, **kwargs)
    for _ in range(5):
        for a, b in zip(gpu, cpu):
            b.grad = complex_normal(b.shape)
            a.grad = b.grad.cuda()
        opt_gpu.step()
        opt_cpu.step()
    tol = STEP_TOL[torch.float32 if dtype == torch.complex64 else torch.float64]
    for a, b in zip(gpu, cpu):
        assert opt_gpu.state[a]["exp_avg"].dtype == dtype
        torch.testing.assert_close(a.detach().cpu(), b.detach(), **tol)


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quantum_weight_zero_is_torch_fused_adamw(dtype, amsgrad, rng):
    ours = _params(rng, dtype, SHAPES)
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    kwargs = dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, amsgrad=amsgrad)
    opt_ours = sp.SuperpositionalAdamW(ours, quantum_weight=0.0, **kwargs)
    opt_theirs = torch.optim.AdamW(theirs, fused=True, **kwargs)
    for _ in range(50):
        _set_grads(rng, ours, theirs)
        opt_ours.step()
        opt_theirs.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, **STEP_TOL[dtype])


def test_many_16_bit_tensors_with_param_states_and_rounding_match_the_cpu_kernel(rng):
    # More tensors than one launch takes, bfloat16 with bfloat16 states, rounded stochastically: the
    # same random bits on both devices; the float32 updates they round agree to about their last bit
    # (the GPU computes the bias corrections in float32), so a value may land on the other neighbour
    # only where its update sits within that of the threshold.
    shapes = [(int(rng.integers(1, 600)),) for _ in range(140)] + [
        (int(rng.integers(1, 30)), 7) for _ in range(10)
    ]
    kwargs = dict(
        quantum_weight=0.4,
        circuit=sp.circuits.entangled(4),
        coverage="all",
        lr=1e-2,
        state_dtype="param",
        stochastic_rounding=77,
    )
    gpu = _params(rng, torch.bfloat16, shapes)
    cpu = [torch.nn.Parameter(p.detach().cpu()) for p in gpu]
    opt_gpu = sp.SuperpositionalAdamW(gpu, **kwargs)
    opt_cpu = sp.SuperpositionalAdamW(cpu, backend="cpu", **kwargs)
    _set_grads(rng, gpu, cpu)
    opt_gpu.step()
    opt_cpu.step()
    a = torch.cat([p.detach().cpu().double().flatten() for p in gpu])
    b = torch.cat([p.detach().double().flatten() for p in cpu])
    assert bool(((a - b).abs() <= 2.0**-7 * torch.maximum(a.abs(), b.abs())).all())
    assert float((a != b).double().mean()) < 0.01
    assert opt_gpu.state[gpu[0]]["exp_avg"].dtype == torch.bfloat16


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


@pytest.mark.parametrize(
    ("dtype", "options"),
    [
        (torch.float32, {}),
        # The rounding key comes from the device step counter: a replayed step rounds as an eager one.
        (torch.bfloat16, {"state_dtype": "param", "stochastic_rounding": 5}),
        (torch.float16, {"stochastic_rounding": True}),
    ],
    ids=["float32", "bfloat16-param-states-rounding", "float16-rounding"],
)
def test_graph_replay_equals_eager(dtype, options, rng):
    kwargs = dict(quantum_weight=0.5, circuit=sp.circuits.entangled(4), coverage="all", **options)
    shapes = [(256, 64), (1000,), (5, 3)]
    eager = _params(rng, dtype, shapes)
    graphed = [torch.nn.Parameter(p.detach().clone()) for p in eager]
    grads = [[torch.as_tensor(rng.normal(size=s)).to("cuda", dtype) for s in shapes] for _ in range(6)]
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
