"""Circuits on Qiskit backends through ``sp.QiskitTarget`` (docs/design.md, *Hardware through Qiskit*),
all offline.

Expectations from fake devices and GenericBackendV2 (noisy, local mode) against the exact ones,
Aer (noiseless) within shot noise; the optimizer never waiting for a job, falling back on failure,
resuming with the jobs in flight; no credential in any output. The network is blocked in every test.
Jobs whose timing or failure a test controls come from a stand-in for the primitive's ``submit``.
"""

from __future__ import annotations

import io
import math
import operator
import pickle
import re
import secrets
import socket
import threading
import time
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import superpositional as sp
from superpositional.apps import cli
from superpositional.backends import kernel
from superpositional.backends.base import StepConfig, StepTensors
from superpositional.backends.qiskit import QiskitTargetWarning, describe_from_env, jobs
from superpositional.backends.qiskit.dispatch import Dispatcher, Evaluation
from superpositional.geometry import gather_groups, group_count, scatter_groups
from superpositional.optim import qiskit_step
from superpositional.optim.update import reference_step
from superpositional.testing import random_circuit

TOKEN = "tok-" + secrets.token_hex(16)


@pytest.fixture(autouse=True)
def _offline(qiskit_runtime, monkeypatch):
    """No test reaches the network; a fake credential is in the environment of every test."""

    def blocked(*args, **kwargs):
        raise OSError("the network is blocked in these tests")

    monkeypatch.setattr(socket.socket, "connect", blocked)
    monkeypatch.setattr(socket, "create_connection", blocked)
    monkeypatch.setattr(socket, "getaddrinfo", blocked)
    monkeypatch.setenv("QISKIT_IBM_TOKEN", TOKEN)
    monkeypatch.setenv("QISKIT_IBM_INSTANCE", "crn:v1:fake-instance")
    monkeypatch.delenv("SUPERPOSITIONAL_QISKIT_BACKEND", raising=False)


def _manila():
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    return FakeManilaV2()


def _exact(circuit, theta, g):
    return sp.simulate(circuit, theta, g, backend="cpu")


def _rows(rng, batch, n):
    theta = torch.from_numpy(rng.uniform(-math.pi, math.pi, size=(batch, n)))
    g = torch.from_numpy(rng.uniform(-math.pi, math.pi, size=(batch, n)))
    return theta, g


# -- expectations ------------------------------------------------------------------------------------


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1])


def _informative(rng, n, batch):
    """A random circuit and inputs whose exact expectations vary (many random circuits give e = 0)."""
    for _ in range(200):
        circuit = random_circuit(n, 8, rng)
        theta, g = _rows(rng, batch, n)
        exact = _exact(circuit, theta, g)
        if exact.std() > 0.3:
            return circuit, theta, g, exact
    raise AssertionError("no random circuit with varying expectations")  # pragma: no cover


@pytest.mark.parametrize("device", ["fake_manila", "generic", "aer with a device's noise"])
def test_noisy_devices_correlate_with_the_exact_expectations(device, rng):
    from qiskit.providers.fake_provider import GenericBackendV2
    from qiskit_aer import AerSimulator

    backend = {
        "fake_manila": _manila,
        "generic": lambda: GenericBackendV2(5, seed=int(rng.integers(1 << 30))),
        "aer with a device's noise": lambda: AerSimulator.from_backend(_manila()),
    }[device]()
    target = sp.QiskitTarget(backend, shots=2000, max_shots_per_job=10**6, seed=int(rng.integers(1 << 30)))
    theta, g = _rows(rng, 40, 4)
    cases = [(sp.circuits.entangled(4), theta, g, _exact(sp.circuits.entangled(4), theta, g))]
    cases.append(_informative(rng, 3, 40))
    for circuit, theta, g, exact in cases:
        got = sp.simulate(circuit, theta, g, backend=target)
        assert got.shape == exact.shape and got.dtype == torch.float64
        assert got.abs().max() <= 1.0
        assert _pearson(got, exact) > 0.9, (device, circuit)


def test_noiseless_aer_is_within_shot_noise(rng):
    from qiskit_aer import AerSimulator

    shots = 2000
    target = sp.QiskitTarget(
        AerSimulator(), shots=shots, max_shots_per_job=10**6, seed=int(rng.integers(1 << 30))
    )
    for n in (1, 2, 4, 5):
        circuit = random_circuit(n, 12, rng)
        theta, g = _rows(rng, 16, n)
        got = sp.simulate(circuit, theta.float(), g.float(), backend=target)
        assert got.dtype == torch.float32  # the inputs' dtype
        exact = _exact(circuit, theta, g)
        sigma = ((1 - exact**2).clamp_min(0) / shots).sqrt()
        # 5 sigma of shot noise; 1e-4 for the local simulator's rounding of angles (1e-5 of pi/2).
        assert ((got.double() - exact).abs() <= 5 * sigma + 1e-4).all(), circuit


def test_a_circuit_that_reads_no_input_runs_on_a_target(rng):
    """The rows still set the batch when the circuit reads neither params nor grads (found by the
    random circuits above: given both inputs, neither reached the job)."""
    from qiskit_aer import AerSimulator

    target = sp.QiskitTarget(AerSimulator(), shots=100, seed=int(rng.integers(1 << 30)))
    circuit = sp.Circuit(2).x(1)  # <Z_0> = 1, <Z_1> = -1 exactly, with any number of shots
    theta, g = _rows(rng, 3, 2)
    for inputs in ((theta, g), (theta, None), (None, g)):
        got = sp.simulate(circuit, *inputs, backend=target)
        assert torch.equal(got, torch.tensor([[1.0, -1.0]] * 3, dtype=torch.float64))


def test_a_target_takes_the_inputs_simulate_takes(rng):
    """One input check for every backend: a reversed numpy view (negative strides) works on a target
    as it does on the kernel (the target's own copy of the checks once refused it)."""
    from qiskit_aer import AerSimulator

    target = sp.QiskitTarget(AerSimulator(), shots=100, seed=int(rng.integers(1 << 30)))
    circuit = sp.Circuit(2).x(1).ry(0, sp.param(0, scale=0.0))  # reads params; <Z> = (1, -1) exactly
    theta = rng.normal(size=(4, 2))[::-1]
    got = sp.simulate(circuit, theta, backend=target)
    assert isinstance(got, np.ndarray) and np.array_equal(got, sp.simulate(circuit, theta, backend="cpu"))


def test_batch_and_session_modes_and_numpy_inputs(rng):
    from qiskit_aer import AerSimulator

    c = sp.Circuit(2).h(0).ry(1, sp.param(1, scale=math.pi)).cx(0, 1).observe(["X", "-Z"])
    theta = rng.uniform(-1, 1, size=(3, 2))
    for mode in ("batch", "session"):
        with sp.QiskitTarget(AerSimulator(), mode=mode, shots=4000) as target:
            got = sp.simulate(c, theta, backend=target)
            assert isinstance(got, np.ndarray) and got.shape == (3, 2)
            np.testing.assert_allclose(got, sp.simulate(c, theta), atol=0.1)


# -- construction and bad input ---------------------------------------------------------------------


def test_targets_from_a_name_from_the_environment_and_pickled(monkeypatch):
    target = sp.QiskitTarget("fake_manila", shots=500)
    assert (target.name, target.num_qubits, target.is_remote) == ("fake_manila", 5, False)
    with pytest.raises(ValueError, match="SUPERPOSITIONAL_QISKIT_BACKEND is not set"):
        sp.QiskitTarget.from_env()
    monkeypatch.setenv("SUPERPOSITIONAL_QISKIT_BACKEND", "fake_lima")
    from_env = sp.QiskitTarget.from_env(refresh_every=3)
    assert from_env.name == "fake_lima" and from_env.options["refresh_every"] == 3
    restored = pickle.loads(pickle.dumps(target))
    assert restored.name == "fake_manila" and dict(restored.options) == dict(target.options)
    assert restored.num_qubits == 5  # resolved again, offline, on first use
    assert target.spec() == "qiskit:fake_manila"


BAD_OPTIONS = [
    (dict(shots=0), ValueError, "shots must be a positive integer"),
    (dict(shots=10.5), ValueError, "shots must be a positive integer"),
    (dict(refresh_every=0), ValueError, "refresh_every"),
    (dict(max_staleness=-2), ValueError, "max_staleness"),
    (dict(max_pending_jobs=True), ValueError, "max_pending_jobs"),
    (dict(shots=1000, max_shots_per_job=999), ValueError, "not even one circuit fits"),
    (dict(on_excess="skip"), ValueError, "on_excess must be one of"),
    (dict(mode="dedicated"), ValueError, "mode must be one of"),
    (dict(optimization_level=4), ValueError, "optimization_level must be one of"),
    (dict(resilience_level=3), ValueError, "resilience_level must be one of"),
    (dict(timeout=-1.0), ValueError, "timeout must be a positive"),
    (dict(timeout=float("nan")), ValueError, "timeout must be a positive"),
    (dict(timeout="60"), TypeError, "timeout must be a number"),
    (dict(local_worker="gpu"), ValueError, "local_worker must be one of"),
    (dict(seed=-1), ValueError, "seed must be"),
]


@pytest.mark.parametrize(("options", "error", "match"), BAD_OPTIONS)
def test_bad_options_raise_clear_errors(options, error, match):
    with pytest.raises(error, match=match):
        sp.QiskitTarget(_manila(), **options)


def test_bad_backends_raise_clear_errors():
    with pytest.raises(TypeError, match="takes a Qiskit BackendV2 or a backend name"):
        sp.QiskitTarget(42)
    with pytest.raises(ValueError, match="must not be empty"):
        sp.QiskitTarget("")
    with pytest.raises(RuntimeError, match="could not resolve the Qiskit backend 'fake_nowhere'"):
        sp.QiskitTarget("fake_nowhere")
    with pytest.raises(ValueError, match="backend must be one of"):
        sp.SuperpositionalAdamW([torch.nn.Parameter(torch.ones(3))], backend=object())


def test_simulate_refuses_what_a_device_cannot_do(rng):
    target = sp.QiskitTarget(_manila(), shots=100, max_circuits_per_job=4)
    c = sp.circuits.entangled(4)
    theta, g = _rows(rng, 5, 4)
    with pytest.raises(ValueError, match="5 rows exceed the Qiskit target's cost guard of 4"):
        sp.simulate(c, theta, g, backend=target)
    with pytest.raises(ValueError, match="return_state"):
        sp.simulate(c, theta[:2], g[:2], backend=target, return_state=True)
    with pytest.raises(ValueError, match="does not compute gradients"):
        sp.simulate(c, theta[:2].requires_grad_(), g[:2], backend=target)
    with pytest.raises(ValueError, match="has 6 qubits but the Qiskit backend 'fake_manila' has 5"):
        sp.simulate(sp.circuits.entangled(6), torch.zeros(1, 6), torch.zeros(1, 6), backend=target)
    with pytest.raises(ValueError, match=r"params must have shape \[\.\.\., 4\]"):
        sp.simulate(c, theta[:, :3], g[:, :3], backend=target)


def _snapshot(params):
    return [p.detach().clone() for p in params]


def test_a_step_the_target_cannot_take_changes_nothing(rng):
    params = [torch.nn.Parameter(torch.from_numpy(rng.normal(size=s)).float()) for s in [(40, 12), (5,)]]
    for p in params:
        p.grad = torch.randn_like(p)
    strict = sp.QiskitTarget(_manila(), max_circuits_per_job=50, on_excess="error", local_worker="thread")
    opt = sp.SuperpositionalAdamW(params, coverage="all", backend=strict)
    before = _snapshot(params)
    with pytest.raises(
        ValueError, match="this step has 122 circuits but the Qiskit target's cost guard allows 50"
    ):
        opt.step()
    opt.param_groups[0].update(coverage="paper", circuit=sp.circuits.entangled(8))
    with pytest.raises(ValueError, match="has 8 qubits but the Qiskit backend 'fake_manila' has 5"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, params))
    assert not opt.state


# -- the optimizer: jobs under the test's control ---------------------------------------------------


class FakeJob:
    """A primitive job whose outcome and timing the test decides."""

    def __init__(self, job_id, values, *, release=None, error=None, cancelled=False):
        self._id, self._values, self._error = job_id, values, error
        self._cancelled = cancelled
        self.release = release if release is not None else threading.Event()
        self.cancel_calls = 0

    def job_id(self):
        return self._id

    def in_final_state(self):
        return self._cancelled or self._error is not None or self.release.is_set()

    def cancelled(self):
        return self._cancelled

    def cancel(self):
        self.cancel_calls += 1

    def result(self):
        if self._error is not None:
            raise self._error
        return [SimpleNamespace(data=SimpleNamespace(evs=self._values))]


class JobFactory:
    """Stands in for ``jobs.submit``: records each job's rows and returns a FakeJob."""

    def __init__(self, make):
        self.make, self.jobs, self.rows = make, [], []

    def __call__(self, target, circuit, params, grads):
        self.rows.append((params, grads))
        job = self.make(f"job-{len(self.jobs) + 1}", params.shape[0], circuit.n_qubits)
        self.jobs.append(job)
        return job


SHAPES = [(7, 5), (3,), (2, 3, 4)]
HYPER = dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.05, quantum_weight=0.3)


def _pair(rng, target, **kwargs):
    """Parameters stepped on ``target`` and twins stepped by the CPU kernel alone."""
    ours = [torch.nn.Parameter(torch.from_numpy(rng.normal(size=s)).float()) for s in SHAPES]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt = sp.SuperpositionalAdamW(ours, backend=target, **HYPER, **kwargs)
    ref = sp.SuperpositionalAdamW(twins, backend="cpu", **HYPER, **kwargs)
    return ours, twins, opt, ref


def _step_both(rng, ours, twins, opt, ref):
    for p, q in zip(ours, twins):
        p.grad = torch.from_numpy(rng.normal(size=p.shape)).float()
        q.grad = p.grad.clone()
    opt.step()
    ref.step()


def _wait_until(condition, limit=30.0):
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


def _train_until(condition, rng, ours, twins, opt, ref, limit=30.0):
    """Step both optimizers until ``condition(dispatcher)`` holds; returns the dispatcher."""
    deadline = time.monotonic() + limit
    while True:
        _step_both(rng, ours, twins, opt, ref)
        dispatcher = opt._qiskit.get(0)
        if condition(dispatcher):
            return dispatcher
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


def _thread_target(**options):
    return sp.QiskitTarget(_manila(), local_worker="thread", **options)


def test_training_never_waits_for_a_job_and_then_uses_its_result(rng, monkeypatch):
    release = threading.Event()
    factory = JobFactory(lambda job_id, rows, n: FakeJob(job_id, np.full((rows, n), 0.5), release=release))
    monkeypatch.setattr(jobs, "submit", factory)
    target = _thread_target(refresh_every=1000, max_staleness=1000)
    ours, twins, opt, ref = _pair(rng, target)

    def train():
        for _ in range(20):
            _step_both(rng, ours, twins, opt, ref)

    trainer = threading.Thread(target=train, daemon=True)
    trainer.start()
    trainer.join(60)
    # The job is released only now: had any step waited for it, training could not have finished.
    assert not trainer.is_alive(), "a step waited for a pending job"
    assert len(factory.jobs) == 1 and factory.rows[0][0].shape == (3, 4)  # one circuit per tensor
    assert all(torch.equal(p, q) for p, q in zip(ours, twins))  # the kernel computed every step
    release.set()
    dispatcher = opt._qiskit.get(0)
    _wait_until(lambda: dispatcher.pending[0].launch.done())
    # The next step uses e = 0.5 on the covered coordinates; the twin does AdamW, then the same term.
    for p, q in zip(ours, twins):
        p.grad = torch.from_numpy(rng.normal(size=p.shape)).float()
        q.grad = p.grad.clone()
    opt.step()
    ref.param_groups[0]["quantum_weight"] = 0.0
    ref.step()
    scale = HYPER["lr"] * HYPER["quantum_weight"]
    with torch.no_grad():
        for q in twins:
            covered = q.view(-1)[:4]
            covered.copy_(covered - scale * torch.full_like(covered, 0.5) * q.grad.view(-1)[:4])
    assert dispatcher.latest is not None and dispatcher.latest.step == 1
    for p, q in zip(ours, twins):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("coverage", ["paper", "all"])
@pytest.mark.parametrize(("maximize", "amsgrad"), [(False, False), (True, False), (False, True)])
def test_a_step_with_received_expectations_is_the_step_with_those_expectations(
    dtype, coverage, maximize, amsgrad, rng
):
    """Oracle: the torch reference step with e = the device's values on the circuits the result
    covers and the kernel's elsewhere."""
    circuit = sp.circuits.entangled(4)
    params = [torch.from_numpy(rng.normal(size=s)).to(dtype) for s in SHAPES]
    grads = [torch.from_numpy(rng.normal(size=s)).to(dtype) for s in SHAPES]
    twins = [p.clone() for p in params]
    tensors, rows, values = [], [], []
    for i, p in enumerate(params):
        count = group_count(p.shape, 4, coverage)
        covered = torch.from_numpy(rng.permutation(count)[: max(1, count // 2)])
        tensors.append(torch.full((covered.numel(),), i))
        rows.append(covered)
        values.append(torch.from_numpy(rng.uniform(-1, 1, size=(covered.numel(), 4))))
    tensors, rows, values = torch.cat(tensors), torch.cat(rows), torch.cat(values)
    dispatcher = Dispatcher(_thread_target(refresh_every=1000))
    dispatcher.last_submitted = 0  # no refresh due: nothing is submitted
    dispatcher.latest = Evaluation(0, tensors, rows, values)
    calls = iter(range(len(params)))

    def device_where_covered(circuit, batch, return_state=False):
        index = next(calls)  # the reference steps the tensors in order
        e, _ = kernel.simulate(circuit, batch)
        mine = tensors == index
        e[rows[mine]] = values[mine].to(e.dtype)
        return e, None

    state_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    # AMSGrad's running maximum from earlier steps: larger than this step's exp_avg_sq in places.
    maxima = [torch.from_numpy(rng.uniform(0, 0.2, size=s)).to(state_dtype) for s in SHAPES]

    def fresh(ps):
        return StepTensors(
            ps,
            grads,
            [torch.zeros_like(p, dtype=state_dtype) for p in ps],
            [torch.zeros_like(p, dtype=state_dtype) for p in ps],
            [torch.zeros((), dtype=torch.float32) for _ in ps],
            [m.clone() for m in maxima] if amsgrad else [],
        )

    config = StepConfig(
        lr=3e-2,
        beta1=0.9,
        beta2=0.99,
        eps=1e-8,
        weight_decay=0.01,
        quantum_weight=0.7,
        maximize=maximize,
        circuit=circuit,
        coverage=coverage,
        amsgrad=amsgrad,
    )
    qiskit_step.step(
        fresh(params),
        config,
        dispatcher=dispatcher,
        indices=list(range(len(params))),
        fused_step=kernel.fused_step,
    )
    reference_step(fresh(twins), config, simulate=device_where_covered)
    for p, q in zip(params, twins):
        # The two implementations' roundings (the covered coordinates are the same torch formula).
        tol = {torch.float32: 2e-6, torch.float64: 1e-13, torch.bfloat16: 2**-7 * (1 + q.abs().max().item())}
        torch.testing.assert_close(p.double(), q.double(), atol=tol[dtype], rtol=0)


@pytest.mark.parametrize("failure", ["raises", "cancelled", "hangs", "submit raises"])
def test_failed_jobs_fall_back_to_the_simulator_and_training_goes_on(failure, rng, monkeypatch):
    def make(job_id, rows, n):
        values = np.full((rows, n), 0.5)
        if failure == "raises":
            return FakeJob(job_id, values, error=RuntimeError("the device is calibrating"))
        if failure == "cancelled":
            return FakeJob(job_id, values, cancelled=True)
        if failure == "submit raises":
            raise ConnectionError("the service refused the job")
        return FakeJob(job_id, values)  # never released: hangs

    factory = JobFactory(make)
    monkeypatch.setattr(jobs, "submit", factory)
    target = _thread_target(refresh_every=1, timeout=0.3)
    ours, twins, opt, ref = _pair(rng, target)
    expected = {
        "raises": "failed: RuntimeError: the device is calibrating",
        "cancelled": "was cancelled",
        "hangs": r"timed out \(cancelled\)",
        "submit raises": "failed: ConnectionError: the service refused the job",
    }[failure]
    with pytest.warns(QiskitTargetWarning, match=expected):
        _train_until(lambda d: d.failures >= 1, rng, ours, twins, opt, ref)
    with pytest.warns(QiskitTargetWarning) as caught:
        _train_until(lambda d: d.stopped, rng, ours, twins, opt, ref)
    messages = [str(w.message) for w in caught]
    assert sum(bool(re.search(expected, m)) for m in messages) == 2  # the second and third failures
    assert any("no more jobs are submitted" in m for m in messages)
    submitted = len(factory.rows)
    for _ in range(5):
        _step_both(rng, ours, twins, opt, ref)
    assert len(factory.rows) == submitted == 3  # stopped after three failures in a row
    assert all(torch.equal(p, q) for p, q in zip(ours, twins))  # every step was the kernel's
    if failure == "hangs":
        assert all(job.cancel_calls >= 1 for job in factory.jobs)


def test_coverage_all_samples_circuits_down_to_the_cost_guard(rng, monkeypatch):
    factory = JobFactory(
        lambda job_id, rows, n: FakeJob(job_id, np.full((rows, n), -0.25), release=threading.Event())
    )
    monkeypatch.setattr(jobs, "submit", factory)
    target = _thread_target(refresh_every=1000, max_staleness=1000, max_circuits_per_job=10, seed=7)
    ours, twins, opt, ref = _pair(rng, target, coverage="all", circuit=sp.circuits.entangled(4))
    _step_both(rng, ours, twins, opt, ref)
    theta_rows, g_rows = factory.rows[0]
    assert theta_rows.shape == g_rows.shape == (10, 4)  # 17 circuits in all, 10 sent
    factory.jobs[0].release.set()
    dispatcher = opt._qiskit.get(0)
    _wait_until(lambda: dispatcher.pending[0].launch.done())
    sent = dispatcher.pending[0]
    assert len(set(zip(sent.tensors.tolist(), sent.rows.tolist()))) == 10
    # Sampled circuits take the device's -0.25, the others the kernel's value for this step.
    before = [p.detach().clone() for p in ours]
    for p, q in zip(ours, twins):
        p.grad = torch.from_numpy(rng.normal(size=p.shape)).float()
        q.grad = p.grad.clone()
    expected_e = []
    for i, (p, g) in enumerate(zip(before, ours)):
        rows = (gather_groups(t.detach(), 4, "all") for t in (p, g.grad))
        e = sp.simulate(sp.circuits.entangled(4), *rows)
        e[sent.rows[sent.tensors == i]] = -0.25
        expected_e.append(scatter_groups(e, p, 4, "all"))
    opt.step()
    ref.param_groups[0]["quantum_weight"] = 0.0
    ref.step()
    scale = HYPER["lr"] * HYPER["quantum_weight"]
    for p, q, e in zip(ours, twins, expected_e):
        torch.testing.assert_close(p.detach(), q.detach() - scale * e * q.grad, atol=1e-6, rtol=0)


class StubLaunch:
    """A launch whose completion the test sets by hand."""

    def __init__(self):
        self.values, self.expired_now, self.abandoned, self.job_id = None, False, False, None

    def done(self):
        return self.values is not None

    def expired(self):
        return self.expired_now

    def expectations(self):
        return self.values

    def abandon(self):
        self.abandoned = True


def test_refresh_and_staleness_rules(monkeypatch):
    launches = {}

    def launch(target, circuit, params, grads):
        launches[dispatcher.clock] = StubLaunch()
        return launches[dispatcher.clock]

    monkeypatch.setattr(jobs, "launch", launch)
    target = _thread_target(refresh_every=3, max_staleness=4, max_pending_jobs=2)
    dispatcher = Dispatcher(target)
    circuit = sp.circuits.paper(4)
    rows = torch.zeros(1, 4)
    usable = {}

    def step(until):
        while dispatcher.clock < until:
            dispatcher.begin_step(circuit)
            if dispatcher.due():
                evaluation = Evaluation(
                    dispatcher.clock, torch.zeros(1, dtype=torch.int64), torch.zeros(1, dtype=torch.int64)
                )
                dispatcher.submit(evaluation, circuit, rows, rows)
            latest = dispatcher.usable()
            usable[dispatcher.clock] = latest.step if latest is not None else None

    step(7)
    assert sorted(launches) == [1, 4]  # every 3 steps; at step 7 both slots are taken
    launches[1].values = np.full((1, 4), 0.1)
    with pytest.warns(
        QiskitTargetWarning, match="arrived 7 steps after its inputs, more than max_staleness=4"
    ):
        step(8)
    assert sorted(launches) == [1, 4, 8] and usable[8] is None  # 7 steps stale: not used
    launches[4].values = launches[8].values = np.full((1, 4), 0.2)
    step(13)
    assert sorted(launches) == [1, 4, 8, 11]
    # The freshest result (inputs of step 8) is used while at most 4 steps stale.
    assert [usable[t] for t in range(9, 14)] == [8, 8, 8, 8, None]


def test_a_launch_past_its_timeout_is_abandoned(monkeypatch):
    stub = StubLaunch()
    monkeypatch.setattr(jobs, "launch", lambda *args: stub)
    dispatcher = Dispatcher(_thread_target())
    circuit = sp.circuits.paper(4)
    dispatcher.begin_step(circuit)
    dispatcher.submit(
        Evaluation(1, torch.zeros(1, dtype=torch.int64), torch.zeros(1, dtype=torch.int64)),
        circuit,
        None,
        None,
    )
    dispatcher.begin_step(circuit)
    assert dispatcher.pending and not stub.abandoned
    stub.expired_now = True
    with pytest.warns(QiskitTargetWarning, match=r"timed out \(cancelled\)"):
        dispatcher.begin_step(circuit)
    assert stub.abandoned and not dispatcher.pending and dispatcher.failures == 1


@pytest.mark.parametrize("coverage", ["paper", "all"])
def test_gathered_groups_are_the_rows_of_group_rows(coverage, rng):
    for shape in [(), (1,), (5,), (7, 5), (6, 4), (3, 4, 5), (2, 1, 3)]:
        t = torch.from_numpy(rng.normal(size=shape)).float()
        every = gather_groups(t.double(), 4, coverage)
        some = torch.from_numpy(rng.permutation(every.shape[0])[: max(1, every.shape[0] // 2)])
        assert every.shape[0] == group_count(t.shape, 4, coverage)
        assert torch.equal(gather_groups(t, 4, coverage, some).double(), every[some])


# -- checkpoints --------------------------------------------------------------------------------------


def _round_trip(state_dict):
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_resume_collects_the_jobs_in_flight(rng, monkeypatch):
    factory = JobFactory(lambda job_id, rows, n: FakeJob(job_id, np.full((rows, n), 0.5)))  # never final
    monkeypatch.setattr(jobs, "submit", factory)
    first = _thread_target(refresh_every=1000, max_staleness=1000)
    ours, twins, opt, ref = _pair(rng, first)
    for _ in range(3):
        _step_both(rng, ours, twins, opt, ref)
    _wait_until(lambda: opt._qiskit.get(0).pending[0].launch.job_id is not None)
    saved = _round_trip(opt.state_dict())
    group = saved["param_groups"][0]
    assert group["backend"] == "qiskit:fake_manila"
    assert [r["job_id"] for r in group["qiskit"]["pending"]] == ["job-1"]
    assert b"QiskitTarget" not in pickle.dumps(saved)

    # A new process: the job is collected from the service by its id.
    second = _thread_target(refresh_every=1000, max_staleness=1000)
    monkeypatch.setattr(type(second), "is_remote", property(lambda self: True))
    asked = []

    def retrieve(job_id):
        asked.append(job_id)
        return FakeJob(job_id, np.full((3, 4), -0.5), release=_released())

    monkeypatch.setattr(second, "retrieve", retrieve)
    resumed_params = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    resumed = sp.SuperpositionalAdamW(resumed_params, backend=second, **HYPER)
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["backend"] is second and "qiskit" not in resumed.param_groups[0]
    dispatcher = resumed._qiskit.get(0)
    assert dispatcher.clock == 3
    for p in resumed_params:
        p.grad = torch.randn_like(p)
    resumed.step()
    assert asked == ["job-1"]
    _wait_until(lambda: not dispatcher.pending or dispatcher.pending[0].launch.done())
    resumed.step()
    assert dispatcher.latest is not None and (dispatcher.latest.step, dispatcher.latest.job_id) == (
        1,
        "job-1",
    )
    assert torch.equal(dispatcher.latest.values, torch.full((3, 4), -0.5, dtype=torch.float64))
    assert dispatcher.clock == 5


def _released():
    event = threading.Event()
    event.set()
    return event


def test_local_jobs_in_a_checkpoint_are_dropped_with_a_warning(rng, monkeypatch):
    monkeypatch.setattr(jobs, "submit", JobFactory(lambda job_id, rows, n: FakeJob(job_id, None)))
    ours, twins, opt, ref = _pair(rng, _thread_target(refresh_every=1000))
    _step_both(rng, ours, twins, opt, ref)
    _wait_until(lambda: opt._qiskit.get(0).pending[0].launch.job_id is not None)
    saved = _round_trip(opt.state_dict())
    again = sp.SuperpositionalAdamW(
        [torch.nn.Parameter(p.detach().clone()) for p in ours], backend=_thread_target(), **HYPER
    )
    with pytest.warns(QiskitTargetWarning, match="1 job\\(s\\) in flight .* cannot be collected"):
        again.load_state_dict(saved)
    broken = _round_trip(saved)
    del broken["param_groups"][0]["qiskit"]["clock"]
    before = again.state_dict()
    with pytest.raises(ValueError, match="the 'qiskit' state of a param group is malformed"):
        again.load_state_dict(broken)
    assert (
        again.state_dict()["param_groups"][0]["qiskit"]["clock"]
        == before["param_groups"][0]["qiskit"]["clock"]
    )
    plain = sp.SuperpositionalAdamW([torch.nn.Parameter(p.detach().clone()) for p in ours], **HYPER)
    with pytest.warns(
        RuntimeWarning, match="1 Qiskit job\\(s\\) in flight, but this optimizer's backend is 'auto'"
    ):
        plain.load_state_dict(saved)
    assert plain.param_groups[0]["backend"] == "auto"


# -- the real local path, end to end ------------------------------------------------------------------


def test_a_fake_device_feeds_training_through_the_worker_process(rng):
    target = sp.QiskitTarget(
        "fake_manila", refresh_every=2, max_staleness=10**6, seed=int(rng.integers(1 << 30))
    )
    ours, twins, opt, ref = _pair(rng, target)
    deadline = time.monotonic() + 120
    while opt._qiskit.get(0) is None or opt._qiskit.get(0).latest is None:
        assert time.monotonic() < deadline, "no result from the local worker process"
        _step_both(rng, ours, twins, opt, ref)
        time.sleep(0.02)
    dispatcher = opt._qiskit.get(0)
    assert dispatcher.failures == 0 and dispatcher.latest.values.shape == (3, 4)
    assert dispatcher.latest.values.abs().max() <= 1
    _step_both(rng, ours, twins, opt, ref)  # this step uses the device's expectations
    assert any(not torch.equal(p, q) for p, q in zip(ours, twins))


# -- credentials ------------------------------------------------------------------------------------------


def test_no_token_in_any_output(rng, monkeypatch, caplog, capsys):
    caplog.set_level("DEBUG")
    outputs = []
    target = _thread_target(refresh_every=1)
    outputs += [repr(target), str(dict(target.options)), pickle.dumps(target).decode("latin-1")]
    leaky = RuntimeError(f"401 Unauthorized: token {TOKEN} was rejected")
    monkeypatch.setattr(
        jobs, "submit", JobFactory(lambda job_id, rows, n: FakeJob(job_id, None, error=leaky))
    )
    ours, twins, opt, ref = _pair(rng, target)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _step_both(rng, ours, twins, opt, ref)
        _wait_until(lambda: opt._qiskit.get(0).pending[0].launch.done())
        _step_both(rng, ours, twins, opt, ref)
    outputs += [str(w.message) for w in caught]
    assert any("token *** was rejected" in str(w.message) for w in caught)
    outputs.append(pickle.dumps(opt.state_dict()).decode("latin-1"))
    with pytest.raises(RuntimeError) as remote:  # the service is asked, with the token, and fails offline
        sp.QiskitTarget("ibm_torino")
    outputs.append(str(remote.value))
    monkeypatch.setenv("SUPERPOSITIONAL_QISKIT_BACKEND", "ibm_torino")
    outputs.append(str(describe_from_env()))
    assert cli.main(["info"]) == 0
    captured = capsys.readouterr()
    outputs += [captured.out, captured.err, caplog.text]
    assert "ibm_torino" in captured.out
    for text in outputs:
        assert TOKEN not in text


def _chain(error):
    """``error`` and every exception chained to it."""
    seen = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def test_simulate_on_a_target_scrubs_qiskit_errors(monkeypatch):
    def leak(target, circuit, params, grads):
        try:
            raise ConnectionError(f"POST /jobs with token {TOKEN}")
        except ConnectionError as inner:
            raise RuntimeError(f"401 Unauthorized: token {TOKEN} was rejected") from inner

    monkeypatch.setattr(jobs, "submit", leak)
    with pytest.raises(RuntimeError, match=r"token \*\*\* was rejected") as raised:
        sp.simulate(sp.circuits.paper(2), torch.rand(3, 2, dtype=torch.float64), backend=_thread_target())
    for error in _chain(raised.value):
        assert TOKEN not in str(error) and TOKEN not in repr(error.args)


def test_a_target_that_cannot_answer_falls_back_to_the_simulator_with_a_scrubbed_warning(rng, monkeypatch):
    target = _thread_target(refresh_every=1)
    ours, twins, opt, ref = _pair(rng, target)

    def unreachable(self):
        raise RuntimeError(f"the service refused token {TOKEN}")

    monkeypatch.setattr(type(target), "num_qubits", property(unreachable))
    with pytest.warns(
        QiskitTargetWarning, match=r"refused token \*\*\*.*this step uses the simulator"
    ) as caught:
        _step_both(rng, ours, twins, opt, ref)
    assert all(TOKEN not in str(w.message) for w in caught)
    assert all(torch.equal(p, q) for p, q in zip(ours, twins))  # training went on: the kernel's step


def test_a_request_the_worker_cannot_pickle_fails_alone(recwarn, monkeypatch):
    from superpositional.backends.qiskit import worker

    monkeypatch.setattr(worker, "_WORKER", None)  # a worker of this test's own
    assert worker.submit(operator.add, 1, 2).result(timeout=60) == 3
    process = worker._WORKER._process
    with pytest.raises(RuntimeError, match="could not be sent to the worker"):
        worker.submit(operator.add, threading.Lock(), 1).result(timeout=60)
    assert worker.submit(operator.add, 2, 3).result(timeout=60) == 5
    assert worker._WORKER._process is process  # no respawn, so nothing leaked
    assert not [w for w in recwarn if issubclass(w.category, ResourceWarning)]
    worker._WORKER.close()
    assert process.poll() is not None


def test_info_shows_the_configured_target(monkeypatch, capsys):
    assert cli.main(["info"]) == 0
    assert "not configured (set SUPERPOSITIONAL_QISKIT_BACKEND)" in capsys.readouterr().out
    monkeypatch.setenv("SUPERPOSITIONAL_QISKIT_BACKEND", "fake_manila")
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "fake_manila" in out and "qubits: 5" in out and "pending_jobs: 0" in out
    assert "cpu_isa" in out  # the build is still shown
