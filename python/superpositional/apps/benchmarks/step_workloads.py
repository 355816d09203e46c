"""What the step benchmark steps: its workloads (lists of tensor shapes), dtypes and tensor values.

Two workloads (issue 15):

- ``single``: one parameter of ``2^k`` elements shaped ``[2^k / 1024, 1024]``, swept over ``k``, so
  that coverage "all" groups rows of 1024 and the sweep shows where each step reaches the memory
  roofline;
- ``llama``: the parameter list of a Llama-like model (embedding, ``layers`` x (4 attention
  projections, 2 up/gate and 1 down projection, 2 norms), final norm, head): 219 tensors and 374 M
  parameters at full size. Many tensors of mixed shapes is what a real model hands an optimizer, and
  it is where per-tensor work (launches, tables, tails) shows. On the CPU and in quick runs it is
  scaled down with the same tensor structure, so that it finishes in seconds.

Every configuration of a case steps copies of the same values, drawn once from a seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = [
    "DTYPES",
    "LLAMA",
    "LLAMA_SMALL",
    "WORKLOADS",
    "Case",
    "LlamaSize",
    "draw",
    "llama_shapes",
    "numel",
    "single_shape",
    "tiny_shapes",
]

WORKLOADS = ("single", "llama")
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
TINY_ELEMENTS = 16  # per tensor of the host-time list: the GPU's work is negligible, the host's is not


@dataclass(frozen=True)
class LlamaSize:
    """The dimensions of the Llama-like list."""

    hidden: int
    intermediate: int
    vocab: int
    layers: int


LLAMA = LlamaSize(hidden=1024, intermediate=2816, vocab=32000, layers=24)  # 219 tensors, 374 M params
LLAMA_SMALL = LlamaSize(hidden=128, intermediate=352, vocab=4000, layers=2)  # 21 tensors, 1.4 M params


def single_shape(log2: int) -> tuple[int, ...]:
    """The single workload's shape at ``2^log2`` elements: rows of 1024 (fewer below 1024)."""
    n = 2**log2
    return (max(n // 1024, 1), min(n, 1024))


def llama_shapes(size: LlamaSize) -> list[tuple[int, ...]]:
    """The parameter shapes of a Llama-like model, in model order."""
    h, i = size.hidden, size.intermediate
    layer = [(h, h)] * 4 + [(i, h)] * 2 + [(h, i)] + [(h,)] * 2  # q, k, v, o; gate, up; down; 2 norms
    return [(size.vocab, h), *(layer * size.layers), (h,), (size.vocab, h)]


def tiny_shapes(shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The same list with every tensor of :data:`TINY_ELEMENTS` elements, keeping its dimension, so
    that a step's time is its host work (Python, tables, launches) alone."""
    return [(TINY_ELEMENTS,) if len(s) == 1 else (TINY_ELEMENTS // 4, 4) for s in shapes]


def numel(shapes: list[tuple[int, ...]]) -> int:
    """Elements in a list of shapes."""
    total = 0
    for shape in shapes:
        count = 1
        for d in shape:
            count *= d
        total += count
    return total


@dataclass(frozen=True)
class Case:
    """One timed set of configurations: a workload's shapes in one dtype."""

    workload: str
    dtype: str
    shapes: list[tuple[int, ...]] = field(hash=False)
    seed: int
    log2: int | None = None  # the single workload's size

    @property
    def label(self) -> str:
        size = f"2^{self.log2}" if self.log2 is not None else f"{len(self.shapes)} tensors"
        return f"{self.workload} {size} {self.dtype}"

    @property
    def params(self) -> int:
        return numel(self.shapes)


def draw(
    shapes: list[tuple[int, ...]], dtype: torch.dtype, device: str, seed: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Parameter values and gradients: standard normal, drawn in float32 on the CPU from ``seed``
    and rounded to ``dtype``, so every dtype and device of a workload starts from the same numbers."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    params = [torch.randn(s, generator=generator).to(device=device, dtype=dtype) for s in shapes]
    grads = [torch.randn(s, generator=generator).to(device=device, dtype=dtype) for s in shapes]
    return params, grads
