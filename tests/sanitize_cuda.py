"""A short program for compute-sanitizer (memcheck, racecheck, initcheck): every CUDA entry point once
(simulate, its adjoint backward, the fused step).

Run as ``compute-sanitizer --tool memcheck python tests/sanitize_cuda.py``; it exits non-zero if a
result is wrong, and the sanitizer reports any bad access.
"""

import sys

import numpy as np
import torch

import superpositional as sp
from superpositional.testing import random_circuit, random_product_circuit


def main() -> int:
    rng = np.random.default_rng(0)
    failures = 0
    # Statevector programs (one lane, a lane group, a whole warp per circuit) and product programs
    # (their own simulate and backward kernels; two circuits per thread in float32 at 3 qubits, and
    # 37 rows leave most threads' second row past the end).
    for n, make in (
        (1, random_circuit),
        (4, random_circuit),
        (7, random_circuit),
        (10, random_circuit),  # a whole warp per circuit
        (3, random_product_circuit),
        (5, random_product_circuit),
    ):
        c = make(n, 20, rng)
        for dtype in (torch.float32, torch.float64):
            theta = torch.as_tensor(rng.uniform(-3, 3, size=(37, n)), dtype=dtype)
            expected = sp.simulate(c, theta.clone(), theta.clone(), backend="torch")
            for return_state in (False, True):
                result = sp.simulate(c, theta.cuda(), theta.cuda(), backend="cuda", return_state=return_state)
                got = result[0] if return_state else result
                failures += not torch.allclose(got.cpu(), expected, atol=1e-5)
            # The adjoint backward, against autograd through the reference.
            weights = torch.as_tensor(rng.normal(size=(37, n)), dtype=dtype)
            grads = []
            for backend, device in (("torch", "cpu"), ("cuda", "cuda")):
                inputs = [theta.clone().to(device).requires_grad_() for _ in range(2)]
                (sp.simulate(c, *inputs, backend=backend) * weights.to(device)).sum().backward()
                grads.append(
                    [t.grad.cpu() if t.grad is not None else torch.zeros_like(theta) for t in inputs]
                )
            failures += not all(torch.allclose(a, b, atol=1e-4) for a, b in zip(*grads))
    for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        for coverage, circuit in (
            ("paper", sp.circuits.paper(4)),
            ("all", sp.circuits.entangled(4)),
            ("all", random_circuit(3, 10, rng)),
        ):
            for amsgrad in (False, True):
                shapes = [(5, 7), (3,), ()]
                params = [torch.nn.Parameter(torch.randn(s, device="cuda").to(dtype)) for s in shapes]
                opt = sp.SuperpositionalAdamW(
                    params, circuit=circuit, coverage=coverage, quantum_weight=0.5, amsgrad=amsgrad
                )
                for _ in range(2):
                    for p in params:
                        p.grad = torch.randn_like(p)
                    opt.step()
                failures += not all(torch.isfinite(p).all() for p in params)
    torch.cuda.synchronize()
    print("sanitize_cuda:", "ok" if failures == 0 else f"{failures} wrong results")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
