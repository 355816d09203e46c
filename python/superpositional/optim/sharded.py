r"""Stepping sharded parameters (FSDP2's DTensors) exactly as their unsharded tensors would be.

FSDP2 (``torch.distributed.fsdp.fully_shard``) shards every parameter along dim 0: each rank
holds a contiguous range ``[s, t)`` of the tensor's flattened elements (whole rows), and its
``exp_avg`` / ``exp_avg_sq`` are sharded the same way (``torch.zeros_like`` of the parameter).

Circuit groups are defined on the *global* tensor (docs/design.md, *The mathematics*), so that a sharded run
takes the same steps as a single process:

- ``coverage="all"``, dim >= 2: groups never cross a row, and shards are whole rows, so every
  group lies in one shard: the local shard is stepped as it is.
- ``coverage="all"``, dim 0 or 1: one row of ``N`` elements, groups ``[kn, (k+1)n)`` by global
  index. A shard whose ends are not multiples of ``n`` (FSDP2's shards have ``ceil(N / world)``
  elements) has at most one group crossing each end.
- ``coverage="paper"``: the one group ``[0, n)`` of the flattened tensor lies on the shard(s)
  where it falls; every other shard takes plain AdamW steps.

A group that crosses a shard boundary needs its neighbours' start-of-step values: one
``all_gather`` per step (per process group) carries, for every such tensor, each rank's range and
its first and last ``n - 1`` values of ``theta`` and ``g``; that is enough to rebuild any crossing
group, however uneven or small the shards. Each rank then simulates the crossing groups itself
and updates its own coordinates of them with the same formula in PyTorch (at most ``2(n - 1)``
coordinates per tensor); everything else goes through the fused kernel. Results equal the
single-process step within floating-point rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..backends.base import Batch, SimulateFn, StepConfig, StepFn, StepTensors
from ..geometry import Crossing, RangePlan, compute_dtype, split_range
from .update import adamw_update

__all__ = ["Shard", "is_sharded", "plan_tensor", "shard_of", "step_sharded"]

# all_gather over one process group: a float64 record per rank in, every rank's record out.
Exchange = Callable[[Any, torch.Tensor], list[torch.Tensor]]


_PLAIN = (torch.Tensor, torch.nn.Parameter)


def is_sharded(t: torch.Tensor) -> bool:
    """Whether ``t`` is a DTensor (a parameter of FSDP2 or of tensor parallelism)."""
    if type(t) in _PLAIN:  # most calls, at every step: no import, no isinstance walk
        return False
    # Imported here, not at the top: torch.distributed.tensor takes 0.4 s to import, and a run that
    # has no DTensor need not pay for it. (torch.compile traces this import: no functools.cache.)
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch built without distributed
        return False
    return isinstance(t, DTensor)


@dataclass
class Shard:
    """Where a local shard sits in its global tensor: flattened elements ``[start, stop)``.

    ``ranges`` holds every rank's ``(start, stop)`` in the shard group (all ranks know all of
    them, so they agree on which tensors need an exchange without talking).
    """

    start: int
    stop: int
    numel: int  # of the global tensor
    dim: int  # of the global tensor
    group: Any = None  # the process group of the sharded mesh dimension (None: not sharded)
    ranges: tuple[tuple[int, int], ...] = ()


_LAYOUTS: dict[tuple, tuple[int, Any, int]] = {}


def _mesh_dim_of(p: torch.Tensor) -> tuple[int, Any, int] | None:
    """``(rank, group, size)`` of the mesh dimension that shards dim 0, or None if replicated."""
    from torch.distributed.tensor import Replicate
    from torch.distributed.tensor import Shard as ShardPlacement

    key = (id(p.device_mesh), tuple(p.placements))
    if key in _LAYOUTS:
        return _LAYOUTS[key]
    sharded = []
    for mesh_dim, placement in enumerate(p.placements):
        if isinstance(placement, ShardPlacement) and placement.dim == 0:
            sharded.append(mesh_dim)
        elif not isinstance(placement, Replicate):
            raise NotImplementedError(
                f"SuperpositionalAdamW steps DTensors sharded along dim 0 (FSDP2) or replicated; got "
                f"placements {p.placements}"
            )
    if len(sharded) > 1:
        raise NotImplementedError(
            f"dim 0 sharded over several mesh dimensions is not supported: {p.placements}"
        )
    mesh = p.device_mesh
    layout = None
    if sharded:
        layout = (mesh.get_local_rank(sharded[0]), mesh.get_group(sharded[0]), mesh.size(sharded[0]))
    _LAYOUTS[key] = layout
    return layout


def shard_of(p: torch.Tensor, local: torch.Tensor) -> Shard:
    """The global position of a DTensor's local shard ``local``.

    DTensor's ``Shard(0)`` splits rows as :func:`torch.chunk` does (FSDP2 pads the last shards,
    but their local tensors hold exactly these rows): rank ``r`` of ``W`` holds rows
    ``[min(r c, R), min((r + 1) c, R))`` with ``c = ceil(R / W)``. Checked against the local shape.
    """
    numel, dim = p.numel(), p.dim()
    layout = _mesh_dim_of(p)
    if layout is None or dim == 0:
        return Shard(0, numel, numel, dim)
    rank, group, size = layout
    rows = p.shape[0]
    row = numel // rows if rows else 0
    chunk = -(-rows // size)
    ranges = tuple((min(r * chunk, rows) * row, min((r + 1) * chunk, rows) * row) for r in range(size))
    start, stop = ranges[rank]
    if local.numel() != stop - start:
        raise RuntimeError(
            f"a DTensor shard of {local.numel()} elements where torch.chunk's layout gives {stop - start} "
            f"(global shape {list(p.shape)}, rank {rank} of {size}): unsupported sharding"
        )
    return Shard(start, stop, numel, dim, group, ranges)


def plan_tensor(shard: Shard, n: int, coverage: str) -> tuple[RangePlan, bool]:
    """How one local shard is stepped (:func:`~superpositional.geometry.split_range` of its range),
    and whether its ends take part in the halo exchange: whether any rank has a crossing group (the
    same answer on every rank; true when the other ranks' ranges are unknown)."""
    if shard.group is None:
        return RangePlan(circuit=((0, shard.stop - shard.start),)), False
    plan = split_range(shard.start, shard.stop, shard.numel, shard.dim, n, coverage)
    if coverage == "all" and shard.dim >= 2:
        return plan, False
    if not shard.ranges:
        return plan, True
    exchanged = any(split_range(a, b, shard.numel, shard.dim, n, coverage).crossings for a, b in shard.ranges)
    return plan, exchanged


@dataclass(frozen=True)
class _Piece:
    """A crossing group's part in the local shard of tensor ``tensor``."""

    tensor: int
    crossing: Crossing


def _all_gather(group: Any, record: torch.Tensor) -> list[torch.Tensor]:
    import torch.distributed as dist

    out = [torch.empty_like(record) for _ in range(dist.get_world_size(group))]
    dist.all_gather(out, record, group=group)
    return out


def step_sharded(
    base_step: StepFn,
    tensors: StepTensors,
    config: StepConfig,
    *,
    simulate: SimulateFn,
    shards: list[Shard] | None = None,
    exchange: Exchange = _all_gather,
) -> None:
    """One step over tensors of which some are sharded; ``base_step`` is the backend's step.

    The tensors may mix DTensors and plain tensors. ``simulate`` runs the crossing groups' circuits
    on the local device. ``shards`` and ``exchange`` exist for tests that emulate several ranks in
    one process: local tensors with their :class:`Shard` and an all_gather of their own.
    """
    n = config.circuit.n_qubits
    # The optimizer's plan leaves a shard's contiguity to the kernel's own check (checkpoint.check_state).
    config = config.replace(states_checked=False)
    if shards is None:
        local = StepTensors(
            *([_local(t) for t in column] for column in tensors[:4]),
            tensors.steps,
            [_local(t) for t in tensors.max_exp_avg_sqs],
            tensors.rounding_streams,
        )
        shards = [
            shard_of(p, p_local) if is_sharded(p) else Shard(0, p.numel(), p.numel(), p.dim())
            for p, p_local in zip(tensors.params, local.params)
        ]
    else:
        local = tensors
    for i, (p, _, m, v, _, v_max) in enumerate(local.rows()):
        if m.shape != p.shape or v.shape != p.shape or (v_max is not None and v_max.shape != p.shape):
            raise RuntimeError(
                f"optimizer state of a sharded parameter must be sharded like it: local shard "
                f"{list(p.shape)}, exp_avg {list(m.shape)}, exp_avg_sq {list(v.shape)} (tensor {i})"
            )
    if config.quantum_weight == 0 or n == 1:  # no group crosses anything that matters: plain local steps
        base_step(local, config)
        return

    circuit_entries: list[tuple[int, int, int]] = []  # (tensor, local lo, hi)
    plain_entries: list[tuple[int, int, int]] = []
    pieces: list[_Piece] = []
    exchanged: list[int] = []
    for i, shard in enumerate(shards):
        plan, exchange_ends = plan_tensor(shard, n, config.coverage)
        circuit_entries += [(i, lo, hi) for lo, hi in plan.circuit]
        plain_entries += [(i, lo, hi) for lo, hi in plan.plain]
        pieces += [_Piece(i, crossing) for crossing in plan.crossings]
        if exchange_ends:
            exchanged.append(i)

    # Every rank takes part in the exchange (the list is the same on all of them), before any
    # kernel changes a parameter: neighbours need start-of-step values.
    halos = _exchange_ends(exchanged, shards, local, n, exchange)
    # The step number each piece's bias correction uses, read before the kernels increment it.
    next_step = {piece.tensor: float(local.steps[piece.tensor]) + 1 for piece in pieces}
    e_pieces = _piece_expectations(pieces, shards, local, halos, config, simulate)
    for piece, e in zip(pieces, e_pieces):
        _update_piece(piece, local, next_step[piece.tensor], e, config)

    stepped: set[int] = set()
    for entries, weight in ((circuit_entries, config.quantum_weight), (plain_entries, 0.0)):
        if not entries:
            continue
        # A whole-tensor entry keeps its shape (coverage "all" groups by row); a part is a view.
        views = [
            [t[i] if lo == 0 and hi == t[i].numel() else _flat(t[i])[lo:hi] for i, lo, hi in entries]
            for t in (*local[:4], local.max_exp_avg_sqs)
            if t
        ]
        base_step(
            StepTensors(
                *views[:4],
                [local.steps[i] for i, _, _ in entries],
                views[4] if len(views) > 4 else [],
                [local.rounding_streams[i] for i, _, _ in entries] if local.rounding_streams else [],
            ),
            config.replace(quantum_weight=weight),
        )
        stepped.update(i for i, _, _ in entries)
    for i in range(len(local.params)):
        if i not in stepped:
            local.steps[i] += 1  # a shard stepped only in pieces (or empty) still counts the step


def _local(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's local shard (the tensor itself otherwise), without autograd's wrapper."""
    if not is_sharded(t):
        return t
    # to_local() goes through an autograd Function (tens of microseconds per call); under no_grad the
    # local tensor itself is the same storage.
    local = getattr(t, "_local_tensor", None)
    return local if local is not None else t.to_local()


def _flat(t: torch.Tensor) -> torch.Tensor:
    """A flat view that writes through: the kernels must update the shard itself, never a copy."""
    if not t.is_contiguous():
        raise RuntimeError("a sharded parameter's local shard must be contiguous to be stepped in parts")
    return t.view(-1)


def _exchange_ends(
    exchanged: list[int], shards: list[Shard], local: StepTensors, n: int, exchange: Exchange
) -> dict[int, list[list[float]]]:
    """Every rank's range and end values for each exchanged tensor: ``{tensor: [record per rank]}``.

    A record is ``[start, stop, theta head, theta tail, g head, g tail]`` (ends ``n - 1`` long,
    zero-padded). Each process group's records come back to the host in one copy: the crossing
    groups are assembled there, so the step costs one device sync per group, not one per element.
    """
    if not exchanged:
        return {}
    width = 2 + 4 * (n - 1)
    by_group: dict[Any, list[int]] = {}
    for i in exchanged:
        by_group.setdefault(shards[i].group, []).append(i)
    halos: dict[int, list[list[float]]] = {}
    for group, members in by_group.items():
        device = local.params[members[0]].device
        record = torch.zeros(len(members), width, dtype=torch.float64, device=device)
        spans = [(shards[i].start, shards[i].stop) for i in members]
        record[:, :2] = torch.tensor(spans, dtype=torch.float64).to(device)
        for row, i in enumerate(members):
            theta = local.params[i].reshape(-1)
            g = local.grads[i].reshape(-1)
            k = min(n - 1, theta.numel())
            for slot, (values, head) in enumerate(((theta, True), (theta, False), (g, True), (g, False))):
                part = values[:k] if head else values[values.numel() - k :]
                record[row, 2 + slot * (n - 1) : 2 + slot * (n - 1) + k] = part.to(torch.float64)
        gathered = exchange(group, record.reshape(-1))
        table = torch.stack(gathered).reshape(len(gathered), len(members), width).cpu().tolist()
        for row, i in enumerate(members):
            halos[i] = [per_rank[row] for per_rank in table]
    return halos


def _global_values(crossing: Crossing, records: list[list[float]], n: int) -> tuple[list[float], list[float]]:
    """The group's ``[n]`` inputs from every rank's ends (this rank's too), zeros past the tensor's end.

    The ends hold every coordinate of a crossing group: a group reaches at most ``n - 1`` past a
    shard boundary on either side, and a rank's own part of it lies in its first or last ``n - 1``.
    """
    theta, g = [0.0] * n, [0.0] * n
    spans = [(int(r[0]), int(r[1]), r) for r in records]
    for j in range(crossing.g0, crossing.g1):
        for start, stop, r in spans:
            if not start <= j < stop:
                continue
            k = min(n - 1, stop - start)
            if j - start < k:  # in that rank's head
                theta[j - crossing.g0], g[j - crossing.g0] = r[2 + j - start], r[2 + 2 * (n - 1) + j - start]
            else:  # in its tail
                index = k - (stop - j)
                theta[j - crossing.g0] = r[2 + (n - 1) + index]
                g[j - crossing.g0] = r[2 + 3 * (n - 1) + index]
            break
        else:  # pragma: no cover - the records cover every crossing group by construction
            raise RuntimeError(f"no rank holds element {j} of a sharded tensor")
    return theta, g


def _piece_expectations(
    pieces: list[_Piece],
    shards: list[Shard],
    local: StepTensors,
    halos: dict[int, list[list[float]]],
    config: StepConfig,
    simulate: SimulateFn,
) -> list[torch.Tensor]:
    """``e`` for each piece's own coordinates, all crossing groups of a compute dtype in one call."""
    circuit = config.circuit
    n = circuit.n_qubits
    out: list[torch.Tensor | None] = [None] * len(pieces)
    for dtype in (torch.float32, torch.float64):
        members = [
            k for k, piece in enumerate(pieces) if compute_dtype(local.params[piece.tensor].dtype) == dtype
        ]
        if not members:
            continue
        rows = [_global_values(pieces[k].crossing, halos[pieces[k].tensor], n) for k in members]
        device = local.params[pieces[members[0]].tensor].device
        theta = torch.tensor([r[0] for r in rows], dtype=torch.float64, device=device).to(dtype)
        g = torch.tensor([r[1] for r in rows], dtype=torch.float64, device=device).to(dtype)
        signed = -g if config.maximize else g
        batch = Batch(
            theta if circuit.uses_params else None,
            signed if circuit.uses_grads else None,
            len(rows),
            dtype,
            device,
        )
        e, _ = simulate(circuit, batch)
        for row, k in enumerate(members):
            piece = pieces[k]
            first = shards[piece.tensor].start + piece.crossing.lo - piece.crossing.g0
            out[k] = e[row, first : first + piece.crossing.hi - piece.crossing.lo]
    return out


def _update_piece(piece: _Piece, local: StepTensors, t: float, e: torch.Tensor, config: StepConfig) -> None:
    """The update rule on a piece's coordinates (its parameter, state and gradient views)."""
    lo, hi = piece.crossing.lo, piece.crossing.hi
    p, m, v = (
        _flat(column[piece.tensor])[lo:hi] for column in (local.params, local.exp_avgs, local.exp_avg_sqs)
    )
    v_max = _flat(local.max_exp_avg_sqs[piece.tensor])[lo:hi] if local.max_exp_avg_sqs else None
    compute = compute_dtype(p.dtype)
    g = _flat(local.grads[piece.tensor])[lo:hi].to(compute)
    if config.maximize:
        g = -g
    p.copy_(adamw_update(p.to(compute), g, m, v, t, e.to(compute), config, v_max))
