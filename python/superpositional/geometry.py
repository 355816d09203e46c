r"""Where circuits meet tensors: which elements form a circuit's group, and the dtypes circuits use.

This module is the one place in Python that knows these rules (docs/design.md, *The
mathematics*); the torch reference, the sharded step, the Qiskit path and the kernels' tensor
table all ask it. The kernels implement the same rules in C++ (``csrc/cpu/step.cpp``,
``csrc/cuda/step.cu``) and are tested against the torch reference, which uses this module.

- A *row* is a slice along dim 0, flattened: a tensor of shape ``[R, ...]`` (dim >= 2) has ``R``
  rows; a tensor of dim 0 or 1 is a single row.
- ``coverage="paper"``: a tensor has one group, its first ``n`` flattened elements (fewer when the
  tensor is smaller); every other element has no circuit (``e = 0``).
- ``coverage="all"``: every element belongs to a group of ``n`` consecutive elements of its row; a
  shorter tail group at the end of a row reads 0 for its missing inputs.
- Groups are numbered row by row, ``q = row * groups_per_row + k``, and group ``q``'s ``j``-th input
  is element ``row * row_length + k * n + j`` of the flattened tensor.
- Circuits and the update compute in float64 for float64 tensors and in float32 for every other
  dtype (bfloat16 and float16 included).
- A complex tensor is stepped as its real view, as ``torch.optim.AdamW`` does (:func:`real_view`):
  each row keeps its elements, real and imaginary parts interleaved (``re0, im0, re1, im1, ...``), so
  a group of ``n`` inputs reads ``n / 2`` complex elements; a complex tensor of dim 0 or 1 is one row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "COVERAGES",
    "Crossing",
    "RangePlan",
    "complex_dtype",
    "compute_dtype",
    "gather_groups",
    "group_count",
    "group_index",
    "real_view",
    "row_count",
    "row_length",
    "scatter_groups",
    "split_range",
]

COVERAGES = ("paper", "all")

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype circuits and the update compute in for tensors of ``dtype``."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def real_view(t: torch.Tensor) -> torch.Tensor:
    """A complex tensor as the real tensor its groups are drawn from (the tensor itself if real):
    :func:`torch.view_as_real`, flattened to one row for dim 0 and 1. Shares ``t``'s storage; a
    non-contiguous complex tensor of dim 1 has no such view and is refused."""
    if not t.is_complex():
        return t
    real = torch.view_as_real(t)
    if t.dim() <= 1:
        if not real.is_contiguous():
            raise ValueError(
                "a non-contiguous complex tensor of dim 1 has no one-row real view; make it contiguous"
            )
        real = real.view(-1)
    return real


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """The complex dtype of statevectors computed in ``compute_dtype(dtype)``."""
    return _COMPLEX[compute_dtype(dtype)]


def row_count(shape: torch.Size | tuple[int, ...]) -> int:
    """How many rows a tensor of ``shape`` has (a tensor of dim 0 or 1 is one row)."""
    return shape[0] if len(shape) >= 2 else 1


def row_length(shape: torch.Size | tuple[int, ...]) -> int:
    """Elements per row (at least 1, so that it always divides the element count)."""
    numel = math.prod(shape)
    rows = row_count(shape)
    return numel // rows if rows > 0 and numel > 0 else max(numel, 1)


def _layout(shape: torch.Size | tuple[int, ...], n: int, coverage: str) -> tuple[int, int, int]:
    """``(rows, row_length, groups_per_row)`` of the groups: the paper group is one row's first group."""
    numel = math.prod(shape)
    if numel == 0:
        return 0, 1, 0
    if coverage == "paper":
        return 1, numel, 1
    length = row_length(shape)
    return row_count(shape), length, -(-length // n)


def group_count(shape: torch.Size | tuple[int, ...], n: int, coverage: str) -> int:
    """How many circuits (groups) a tensor of ``shape`` has."""
    rows, _, per_row = _layout(shape, n, coverage)
    return rows * per_row


def group_index(
    shape: torch.Size | tuple[int, ...],
    n: int,
    coverage: str,
    groups: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat element indices ``[S, n]`` of the inputs of ``groups`` (default: every group, in order),
    and which of them exist (a short group has fewer than ``n``; its missing slots repeat a valid
    index, so gathering with them is always in bounds)."""
    rows, length, per_row = _layout(shape, n, coverage)
    if groups is None:
        groups = torch.arange(rows * per_row, device=device)
    else:
        groups = groups.to(device=device if device is not None else groups.device, dtype=torch.int64)
    columns = (groups % max(per_row, 1)).unsqueeze(1) * n + torch.arange(n, device=groups.device)
    valid = columns < length
    index = (groups // max(per_row, 1)).unsqueeze(1) * length + columns.clamp(max=length - 1)
    return index, valid


def gather_groups(t: torch.Tensor, n: int, coverage: str, groups: torch.Tensor | None = None) -> torch.Tensor:
    """The ``[S, n]`` circuit inputs of ``groups`` of ``t`` (default: all), missing inputs read 0."""
    index, valid = group_index(t.shape, n, coverage, groups, t.device)
    values = t.reshape(-1)[index] if t.numel() else t.new_zeros(index.shape)
    return torch.where(valid, values, values.new_zeros(()))


def scatter_groups(
    values: torch.Tensor,
    like: torch.Tensor,
    n: int,
    coverage: str,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-group values ``[S, n]`` of ``groups`` (default: all) placed in a tensor shaped like
    ``like``: each value at its coordinate, 0 where no group (of ``groups``) reaches."""
    index, valid = group_index(like.shape, n, coverage, groups, values.device)
    out = values.new_zeros(like.numel())
    out[index[valid]] = values[valid]
    return out.reshape(like.shape)


# -- contiguous ranges of a tensor (the local shards of FSDP2) ---------------------------------------


@dataclass(frozen=True)
class Crossing:
    """The part ``[lo, hi)`` (range-local) of the group ``[g0, g1)`` (global flat indices) that the
    range shares with the elements outside it."""

    lo: int
    hi: int
    g0: int
    g1: int


@dataclass(frozen=True)
class RangePlan:
    """How a contiguous range of a tensor's flattened elements is stepped, in range-local coordinates.

    ``circuit`` ranges hold whole groups (aligned as in the whole tensor), ``plain`` ranges hold
    elements of no group, and each crossing is the range's part of a group that reaches outside it.
    Every element of the range is in exactly one of them.
    """

    circuit: tuple[tuple[int, int], ...] = ()
    plain: tuple[tuple[int, int], ...] = ()
    crossings: tuple[Crossing, ...] = ()


def split_range(start: int, stop: int, numel: int, dim: int, n: int, coverage: str) -> RangePlan:
    """Split the flat range ``[start, stop)`` of a tensor of ``numel`` elements and dimension ``dim``.

    Ranges of whole rows of a tensor of dim >= 2 never cut a ``coverage="all"`` group; a 1-D tensor
    (one row) has groups ``[kn, (k + 1)n)``, and the paper group is ``[0, min(n, numel))``.
    """
    local = stop - start
    whole = start == 0 and stop == numel
    if whole or (coverage == "all" and dim >= 2):
        return RangePlan(circuit=((0, local),))
    if coverage == "paper":
        end = min(n, numel)  # the group [0, end)
        if start == 0 and stop >= end:
            return RangePlan(circuit=((0, local),))
        if start >= end or local == 0:
            return RangePlan(plain=((0, local),))
        hi = min(stop, end) - start
        return RangePlan(
            plain=((hi, local),) if hi < local else (),
            crossings=(Crossing(0, hi, 0, end),),
        )
    # coverage "all" on one row of numel elements: groups [kn, min((k + 1)n, numel)).
    if local == 0:
        return RangePlan()
    first = -(-start // n) * n  # the first group start at or after `start`
    last = (stop // n) * n if stop < numel else stop  # the end of the last group inside the range
    crossings = []
    if first > start or first >= stop:  # a group crosses `start` (or holds the whole range)
        g0 = (start // n) * n
        crossings.append(Crossing(0, min(stop, g0 + n) - start, g0, min(g0 + n, numel)))
    if first <= last < stop and not (crossings and crossings[0].hi == local):
        crossings.append(Crossing(last - start, local, last, min(last + n, numel)))
    circuit = ((first - start, last - start),) if last > first else ()
    return RangePlan(circuit=circuit, crossings=tuple(crossings))
