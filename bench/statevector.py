"""Circuits per second for circuits that need a statevector: our kernel against cuStateVec's
batched API and the torch reference, on the same circuits and float32 inputs.

The circuits (4 and 8 qubits) keep a parameterised gate after their entangling gates, so no
compilation reduces them to products of one-qubit expectations:

- ``rotated(n)``: ``entangled(n)`` (H, RY(pi theta_k), RZ(pi g_k), a CNOT chain) followed by
  RX(theta_k) on every qubit, measured in Z;
- ``random(n)``: a fixed random circuit of 6n gates over the whole gate set (seed 0).

Rows, each checked against our kernel's expectations (within 1e-4) before it is timed:

- ``ours``: ``sp.simulate(..., backend=<device>)``;
- ``custatevec``: one ``custatevecApplyMatrixBatched`` per gate (per-circuit matrices for input
  angles), one ``custatevecComputeExpectationBatched`` per output; the matrices built by torch;
- ``custatevec-fused``: the same with each run of one-qubit gates on a qubit fused into one
  per-circuit matrix (for ``entangled`` that is each qubit's H RY RZ as one gate);
- ``torch``: the vectorised torch reference (every gate on a ``[B, 2**n]`` state).

The cuStateVec rows need a GPU and ``custatevec-cu13`` (``-cu12`` for a CUDA 12 torch); without
them they are skipped, with the reason in the table and the JSON. Backends of a cell are timed in
interleaved rounds (median of ROUNDS samples, each the mean of enough calls to last SAMPLE_SECONDS).

    python3 bench/statevector.py --device cuda --out results/
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import superpositional as sp
from superpositional.circuit import Circuit, Input
from superpositional.testing import random_circuit

sys.path.insert(0, str(Path(__file__).parent))
import custatevec_ctypes  # the modules beside this script
import interleaved

from commit import commit  # the module beside this script

ROUNDS, SAMPLE_SECONDS = 5, 0.1
BATCHES = {"cpu": [10**3, 10**4, 10**5], "cuda": [10**4, 10**5, 10**6, 10**7]}
# Amplitudes per call: the torch reference holds several [B, 2**n] complex temporaries, cuStateVec one.
AMPLITUDE_CAP = {"torch": {"cpu": 2**24, "cuda": 2**28}, "custatevec": 2**32, "ours": 2**36}
TOLERANCE = 1e-4


def rotated(n: int) -> Circuit:
    """``entangled(n)``, then RX(theta_k) on every qubit: a statevector is needed."""
    c = Circuit(n)
    for gate in sp.circuits.entangled(n).gates:
        getattr(c, gate.name)(*gate.qubits, *([] if gate.angle is None else [gate.angle]))
    for k in range(n):
        c.rx(k, sp.param(k))
    return c.observe(["Z"] * n)


CIRCUITS: dict[str, Callable[[int], Circuit]] = {
    "rotated": rotated,
    "random": lambda n: random_circuit(n, 6 * n, np.random.default_rng(0)),
}

# One-qubit matrices, row-major.
_H = [[1 / math.sqrt(2), 1 / math.sqrt(2)], [1 / math.sqrt(2), -1 / math.sqrt(2)]]
_X = [[0, 1], [1, 0]]
_Y = [[0, -1j], [1j, 0]]
_Z = [[1, 0], [0, -1]]


def _rotation(name: str, angle: torch.Tensor) -> torch.Tensor:
    """``[..., 2, 2]`` matrices of RX, RY or RZ for the angles ``[...]``."""
    c, s = torch.cos(angle / 2), torch.sin(angle / 2)
    zero = torch.zeros_like(c)
    one_i = torch.complex(zero, torch.ones_like(c))
    c, s = c.to(one_i.dtype), s.to(one_i.dtype)
    rows = {
        "rx": ((c, -one_i * s), (-one_i * s, c)),
        "ry": ((c, -s), (s, c)),
        "rz": ((c - one_i * s, torch.zeros_like(c)), (torch.zeros_like(c), c + one_i * s)),
    }[name]
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def _gate_matrix(gate, theta: torch.Tensor, grads: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The gate's ``[B, 2, 2]`` (input angle) or ``[2, 2]`` matrix; CX and CZ give their target's."""
    device = theta.device
    if gate.name in ("h", "x", "cx", "cz"):
        return torch.tensor({"h": _H, "x": _X, "cx": _X, "cz": _Z}[gate.name], dtype=dtype, device=device)
    angle = gate.angle
    if isinstance(angle, Input):
        source = theta if angle.source == "param" else grads
        values = source[:, angle.index].double() * angle.scale + angle.offset
    else:
        values = torch.tensor(float(angle), dtype=torch.float64, device=device)
    return _rotation(gate.name, values).to(dtype)


def _product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for ``[..., 2, 2]`` matrices, elementwise: torch's batched matmul of millions of
    2x2 complex matrices is far slower than these eight products (it made the fused row slower
    than the gate-by-gate one on the H200)."""
    a, b = torch.broadcast_tensors(a, b)
    rows = [[a[..., i, 0] * b[..., 0, j] + a[..., i, 1] * b[..., 1, j] for j in range(2)] for i in range(2)]
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def custatevec_runner(
    handle: custatevec_ctypes.CuStateVec,
    circuit: Circuit,
    theta: torch.Tensor,
    grads: torch.Tensor,
    fused: bool,
) -> Callable[[], torch.Tensor]:
    """A call that simulates the batch with cuStateVec and returns ``[B, n]`` expectations."""
    n, batch = circuit.n_qubits, theta.shape[0]
    dtype = torch.complex64 if theta.dtype == torch.float32 else torch.complex128
    observables = {
        p: torch.tensor(m, dtype=dtype, device=theta.device) for p, m in (("X", _X), ("Y", _Y), ("Z", _Z))
    }
    states = torch.empty(batch, 2**n, dtype=dtype, device=theta.device)

    def run() -> torch.Tensor:
        states.zero_()
        states[:, 0] = 1
        pending: dict[int, torch.Tensor] = {}

        def flush(q: int) -> None:
            if q in pending:
                handle.apply(states, pending.pop(q), q)

        for gate in circuit.gates:
            matrix = _gate_matrix(gate, theta, grads, dtype)
            if len(gate.qubits) == 2:
                control, target = gate.qubits
                if fused:
                    flush(control)
                    flush(target)
                handle.apply(states, matrix, target, control)
            elif fused:
                q = gate.qubits[0]
                pending[q] = _product(matrix, pending[q]) if q in pending else matrix
            else:
                handle.apply(states, matrix, gate.qubits[0])
        for q in list(pending):
            flush(q)
        columns = []
        for k, name in enumerate(circuit.observables):
            value = handle.expectation(states, observables[name[-1]], k).real
            columns.append(-value if name.startswith("-") else value)
        return torch.stack(columns, dim=1)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"]
    )
    parser.add_argument("--qubits", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--quick", action="store_true", help="the smallest batch of each device only")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for statevector-<device>.json")
    args = parser.parse_args()
    device = args.device
    handle, note = custatevec_ctypes.load() if device == "cuda" else (None, "a CPU run")
    rng = np.random.default_rng(1)
    cells = [
        (name, n, batch)
        for name in CIRCUITS
        for n in args.qubits
        for batch in (BATCHES[device][:1] if args.quick else BATCHES[device])
    ]
    rows = []
    for name, n, batch in tqdm(cells, desc="cells", unit="cell"):
        circuit = CIRCUITS[name](n)
        theta = torch.as_tensor(rng.uniform(-1, 1, size=(batch, n)), dtype=torch.float32, device=device)
        grads = torch.as_tensor(rng.uniform(-1, 1, size=(batch, n)), dtype=torch.float32, device=device)
        ours = sp.simulate(circuit, theta, grads, backend=device)

        def on(backend: str, circuit=circuit, theta=theta, grads=grads) -> Callable[[], object]:
            return lambda: sp.simulate(circuit, theta, grads, backend=backend)

        runners: dict[str, Callable[[], object]] = {"ours": on(device)}
        skipped: dict[str, str] = {}
        amplitudes = batch * 2**n
        if amplitudes <= AMPLITUDE_CAP["torch"][device]:
            runners["torch"] = on("torch")
        for fused in (False, True):
            label = "custatevec-fused" if fused else "custatevec"
            if handle is None:
                skipped[label] = note
            elif amplitudes > AMPLITUDE_CAP["custatevec"]:
                skipped[label] = "batch too large"
            else:
                runners[label] = custatevec_runner(handle, circuit, theta, grads, fused)
        for label, run in runners.items():  # every peer must agree before it is timed
            error = float((run().to(ours.dtype) - ours).abs().max())
            if error > TOLERANCE:
                raise SystemExit(f"{label} disagrees with ours on {name}({n}) by {error:.2e}")
        rates = interleaved.rates(runners, batch, device, ROUNDS, SAMPLE_SECONDS)
        rows.append({"circuit": f"{name}({n})", "batch": batch, "rates": rates, "skipped": skipped})
    if handle is not None:
        handle.close()
    labels = ["ours", "custatevec", "custatevec-fused", "torch"]
    print(
        f"\n{'circuit':<12s} {'batch':>9s} " + " ".join(f"{label:>17s}" for label in labels) + "   ours/fused"
    )
    for row in rows:
        cells_text = [
            f"{row['rates'][label]:17.3e}" if label in row["rates"] else f"{'-':>17s}" for label in labels
        ]
        fused = row["rates"].get("custatevec-fused")
        ratio = f"{row['rates']['ours'] / fused:8.1f}x" if fused else "       -"
        print(f"{row['circuit']:<12s} {row['batch']:>9d} " + " ".join(cells_text) + "   " + ratio)
    print(f"(circuits per second, float32; cuStateVec: {note})")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"statevector-{device}.json"
    record = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "custatevec": note,
        "torch": torch.__version__,
        "superpositional": sp.__version__,
        "commit": commit(),
        "rows": rows,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
