"""Circuits per second of simulate's gradients: the product-state adjoint against the statevector
adjoint on the same circuits, and the user-facing forward + backward against torch autograd.

For ``entangled(n)`` and ``attention(n)`` (product programs once compiled), float32:

- ``backward (product)``: the adjoint kernel alone (``backends.kernel.simulate_backward``) on the
  compiled program, which runs the per-qubit sweep of ``csrc/adjoint.h``;
- ``backward (statevector)``: the same call on the program compiled to keep the statevector, which
  runs the statevector sweep (what every backward ran before the product adjoint);
- ``forward``: ``sp.simulate`` without autograd;
- ``fwd+bwd``: ``(sp.simulate(c, theta, g) * w).sum().backward()`` with both inputs requiring grad;
- ``e.backward(w)``: ``sp.simulate(c, theta, g).backward(w)``, the same gradients without torch's
  multiply, sum and their backward (four passes over [batch, n] that the row above pays);
- ``torch fwd+bwd``: the same through the torch reference and autograd (small batches only).

Backends of a cell are timed in interleaved rounds (median of ROUNDS, each sample the mean of
enough calls to last SAMPLE_SECONDS).

    OMP_NUM_THREADS=2 python3 bench/adjoint.py [--device cuda] [--out results/]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import interleaved  # the module beside this script
import torch
from tqdm import tqdm

import superpositional as sp
from superpositional.backends import Batch, kernel

from commit import commit  # the module beside this script

ROUNDS, SAMPLE_SECONDS = 7, 0.1
BATCHES = {"cpu": [10**4, 10**5, 10**6], "cuda": [10**5, 10**6, 10**7, 10**8]}
TORCH_MAX_BATCH = {"cpu": 10**5, "cuda": 10**7}
# Autograd through the torch reference saves a [batch, 2^n] complex state per gate: 2^32 saved
# amplitudes (34 GB) bound its graph (entangled(8) at 1e7 circuits would need 600 GB).
TORCH_MAX_SAVED_AMPLITUDES = 2**32
CIRCUITS = {
    "entangled(4)": lambda: sp.circuits.entangled(4),
    "attention(4)": lambda: sp.circuits.attention(4),
    "entangled(8)": lambda: sp.circuits.entangled(8),
}
# The statevector sweep holds two 2^n states per circuit: keep its calls bounded.
STATEVECTOR_MAX_AMPLITUDES = {"cpu": 2**26, "cuda": 2**32}


def runners(circuit, batch: int, device: str) -> dict[str, Callable[[], object]]:
    n = circuit.n_qubits
    theta = torch.rand(batch, n, device=device)
    g = torch.rand(batch, n, device=device)
    w = torch.randn(batch, n, device=device)
    rows = Batch(theta, g, batch, theta.dtype, theta.device)
    leaf_theta, leaf_g = theta.clone().requires_grad_(), g.clone().requires_grad_()

    def backward(keep_state: bool) -> Callable[[], object]:
        return lambda: kernel.simulate_backward(
            circuit, rows, w, want_params=True, want_grads=True, keep_state=keep_state
        )

    def forward_backward(backend: str) -> Callable[[], object]:
        def run() -> None:
            leaf_theta.grad = leaf_g.grad = None
            (sp.simulate(circuit, leaf_theta, leaf_g, backend=backend) * w).sum().backward()

        return run

    def upstream_backward() -> None:
        leaf_theta.grad = leaf_g.grad = None
        sp.simulate(circuit, leaf_theta, leaf_g, backend=device).backward(w)

    made = {
        "backward (product)": backward(False),
        "forward": lambda: sp.simulate(circuit, theta, g, backend=device),
        "fwd+bwd": forward_backward(device),
        "e.backward(w)": upstream_backward,
    }
    if batch * 2**n <= STATEVECTOR_MAX_AMPLITUDES[device]:
        made["backward (statevector)"] = backward(True)
    if batch <= TORCH_MAX_BATCH[device] and batch * 2**n * len(circuit.gates) <= TORCH_MAX_SAVED_AMPLITUDES:
        made["torch fwd+bwd"] = forward_backward("torch")
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="the smallest batch only")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for adjoint-<device>.json")
    args = parser.parse_args()
    device = args.device
    batches = BATCHES[device][:1] if args.quick else BATCHES[device]
    cells = [(name, batch) for name in CIRCUITS for batch in batches]
    results = []
    for name, batch in tqdm(cells, desc="cells", unit="cell"):
        circuit = CIRCUITS[name]()
        rates = interleaved.rates(runners(circuit, batch, device), batch, device, ROUNDS, SAMPLE_SECONDS)
        results.append({"circuit": name, "batch": batch, "rates": rates})
    labels = [
        "backward (product)",
        "backward (statevector)",
        "forward",
        "fwd+bwd",
        "e.backward(w)",
        "torch fwd+bwd",
    ]
    print(f"\n{'circuit':<14s} {'batch':>9s} " + " ".join(f"{label:>22s}" for label in labels))
    for row in results:
        cells_text = [
            f"{row['rates'][label]:22.3e}" if label in row["rates"] else f"{'-':>22s}" for label in labels
        ]
        print(f"{row['circuit']:<14s} {row['batch']:>9d} " + " ".join(cells_text))
    print(f"(circuits per second, float32, {torch.get_num_threads()} threads on the CPU)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"adjoint-{device}.json"
    record = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "cpu_isa": kernel.require_extension().cpu_isa(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "superpositional": sp.__version__,
        "commit": commit(),
        "rows": results,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
