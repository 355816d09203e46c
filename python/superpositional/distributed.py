r"""Stepping sharded parameters (FSDP2's DTensors) exactly as their unsharded tensors would be.

FSDP2 (``torch.distributed.fsdp.fully_shard``) shards every parameter along dim 0: each rank
holds a contiguous range ``[s, t)`` of the tensor's flattened elements (whole rows), and its
``exp_avg`` / ``exp_avg_sq`` are sharded the same way (``torch.zeros_like`` of the parameter).

Circuit groups are defined on the *global* tensor (DESIGN.md section 2), so that a sharded run
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
from dataclasses import dataclass, field
from typing import Any

import torch

from .circuit import Circuit

__all__ = ["is_sharded", "step_sharded"]

StepFn = Callable[..., None]
# all_gather over one process group: a float64 record per rank in, every rank's record out.
Exchange = Callable[[Any, torch.Tensor], list[torch.Tensor]]


def is_sharded(t: torch.Tensor) -> bool:
    """Whether ``t`` is a DTensor (a parameter of FSDP2 or of tensor parallelism)."""
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


@dataclass
class _Piece:
    """Local coordinates ``[lo, hi)`` of one tensor whose group ``[g0, g1)`` crosses a shard end."""

    tensor: int
    lo: int
    hi: int
    g0: int
    g1: int


@dataclass
class _Plan:
    circuit_entries: list[tuple[int, int, int]] = field(default_factory=list)  # tensor, local lo, hi
    plain_entries: list[tuple[int, int, int]] = field(default_factory=list)
    pieces: list[_Piece] = field(default_factory=list)
    exchanged: list[int] = field(default_factory=list)  # tensors whose ends go into the all_gather


def plan_tensor(shard: Shard, n: int, coverage: str) -> tuple[list, list, list, bool]:
    """How one local shard is stepped: kernel ranges with the circuit, without it, and crossing pieces.

    Returns ``(circuit_ranges, plain_ranges, pieces, exchanged)`` with ranges in local flattened
    coordinates and pieces as ``(lo, hi, g0, g1)``; ``exchanged`` says whether the tensor's
    ends take part in the halo exchange: whether any rank has a piece (the same answer on every
    rank; true when the other ranks' ranges are unknown).
    """
    circuit, plain, pieces = _local_plan(shard, n, coverage)
    if shard.group is None or (coverage == "all" and shard.dim >= 2):
        return circuit, plain, pieces, False
    if not shard.ranges:
        return circuit, plain, pieces, True
    exchanged = any(
        _local_plan(Shard(a, b, shard.numel, shard.dim, shard.group), n, coverage)[2] for a, b in shard.ranges
    )
    return circuit, plain, pieces, exchanged


def _local_plan(shard: Shard, n: int, coverage: str) -> tuple[list, list, list]:
    """``plan_tensor`` without the exchange decision."""
    s, t, numel = shard.start, shard.stop, shard.numel
    local = t - s
    whole = shard.group is None
    if whole or (coverage == "all" and shard.dim >= 2):
        return [(0, local)], [], []
    if coverage == "paper":
        end = min(n, numel)  # the group [0, end)
        if s == 0 and t >= end:
            return [(0, local)], [], []
        if s >= end or local == 0:
            return [], [(0, local)], []
        hi = min(t, end) - s
        plain = [(hi, local)] if hi < local else []
        return [], plain, [(0, hi, 0, end)]
    # coverage "all" on one row of numel elements: groups [kn, min((k+1)n, numel)).
    if local == 0:
        return [], [], []
    first = -(-s // n) * n  # the first group start at or after s
    last = (t // n) * n if t < numel else t  # the end of the last group inside [s, t)
    pieces = []
    if first > s or first >= t:  # a group crosses s (or the shard lies inside one group)
        g0 = (s // n) * n
        pieces.append((0, min(t, g0 + n) - s, g0, min(g0 + n, numel)))
    if last < t and last >= first and not (pieces and pieces[0][1] == local):
        pieces.append((last - s, local, last, min(last + n, numel)))
    circuit = [(first - s, last - s)] if last > first else []
    return circuit, [], pieces


def _all_gather(group: Any, record: torch.Tensor) -> list[torch.Tensor]:
    import torch.distributed as dist

    out = [torch.empty_like(record) for _ in range(dist.get_world_size(group))]
    dist.all_gather(out, record, group=group)
    return out


def step_sharded(
    stepper: StepFn,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    steps: list[torch.Tensor],
    *,
    circuit: Circuit,
    coverage: str,
    quantum_weight: float,
    maximize: bool,
    simulate_backend: str,
    shards: list[Shard] | None = None,
    exchange: Exchange = _all_gather,
    **hyper: Any,
) -> None:
    """One step over tensors of which some are sharded; ``stepper`` is the backend's fused step.

    ``params`` etc. may mix DTensors and plain tensors; ``hyper`` holds ``lr``, ``beta1``,
    ``beta2``, ``eps`` and ``weight_decay``. ``shards`` and ``exchange`` exist for tests that
    emulate several ranks in one process: local tensors with their :class:`Shard` and an
    all_gather of their own.
    """
    n = circuit.n_qubits
    if shards is None:
        local = [[_local(t) for t in ts] for ts in (params, grads, exp_avgs, exp_avg_sqs)]
        shards = [
            shard_of(p, p_local) if is_sharded(p) else Shard(0, p.numel(), p.numel(), p.dim())
            for p, p_local in zip(params, local[0])
        ]
    else:
        local = [params, grads, exp_avgs, exp_avg_sqs]
    p_l, g_l, m_l, v_l = local
    for i, (p, m, v) in enumerate(zip(p_l, m_l, v_l)):
        if m.shape != p.shape or v.shape != p.shape:
            raise RuntimeError(
                f"optimizer state of a sharded parameter must be sharded like it: local shard "
                f"{list(p.shape)}, exp_avg {list(m.shape)}, exp_avg_sq {list(v.shape)} (tensor {i})"
            )
    options = dict(circuit=circuit, coverage=coverage, maximize=maximize, **hyper)
    if quantum_weight == 0 or n == 1:  # no group crosses anything that matters: plain local steps
        stepper(p_l, g_l, m_l, v_l, steps, quantum_weight=quantum_weight, **options)
        return

    plan = _Plan()
    for i, shard in enumerate(shards):
        circuit_ranges, plain_ranges, pieces, exchanged = plan_tensor(shard, n, coverage)
        plan.circuit_entries += [(i, lo, hi) for lo, hi in circuit_ranges]
        plan.plain_entries += [(i, lo, hi) for lo, hi in plain_ranges]
        plan.pieces += [_Piece(i, *piece) for piece in pieces]
        if exchanged:
            plan.exchanged.append(i)

    # Every rank takes part in the exchange (the list is the same on all of them), before any
    # kernel changes a parameter: neighbours need start-of-step values.
    halos = _exchange_ends(plan.exchanged, shards, p_l, g_l, n, exchange)
    # The step number each piece's bias correction uses, read before the kernels increment it.
    next_step = {piece.tensor: steps[piece.tensor] + 1 for piece in plan.pieces}
    e_pieces = _piece_expectations(plan.pieces, shards, p_l, halos, circuit, maximize, simulate_backend)
    for piece, e in zip(plan.pieces, e_pieces):
        _update_piece(
            piece, p_l, g_l, m_l, v_l, next_step[piece.tensor], e, quantum_weight, maximize, **hyper
        )

    stepped: set[int] = set()
    for entries, weight in ((plan.circuit_entries, quantum_weight), (plan.plain_entries, 0.0)):
        if not entries:
            continue
        # A whole-tensor entry keeps its shape (coverage "all" groups by row); a part is a view.
        views = [
            [t[i] if lo == 0 and hi == t[i].numel() else _flat(t[i])[lo:hi] for i, lo, hi in entries]
            for t in (p_l, g_l, m_l, v_l)
        ]
        stepper(*views, [steps[i] for i, _, _ in entries], quantum_weight=weight, **options)
        stepped.update(i for i, _, _ in entries)
    for i in range(len(params)):
        if i not in stepped:
            steps[i] += 1  # a shard stepped only in pieces (or empty) still counts the step


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
    tensors: list[int],
    shards: list[Shard],
    p_l: list[torch.Tensor],
    g_l: list[torch.Tensor],
    n: int,
    exchange: Exchange,
) -> dict[int, list[list[float]]]:
    """Every rank's range and end values for each exchanged tensor: ``{tensor: [record per rank]}``.

    A record is ``[start, stop, theta head, theta tail, g head, g tail]`` (ends ``n - 1`` long,
    zero-padded). Each process group's records come back to the host in one copy: the crossing
    groups are assembled there, so the step costs one device sync per group, not one per element.
    """
    if not tensors:
        return {}
    width = 2 + 4 * (n - 1)
    by_group: dict[Any, list[int]] = {}
    for i in tensors:
        by_group.setdefault(shards[i].group, []).append(i)
    halos: dict[int, list[list[float]]] = {}
    for group, members in by_group.items():
        device = p_l[members[0]].device
        record = torch.zeros(len(members), width, dtype=torch.float64, device=device)
        spans = [(shards[i].start, shards[i].stop) for i in members]
        record[:, :2] = torch.tensor(spans, dtype=torch.float64).to(device)
        for row, i in enumerate(members):
            theta = p_l[i].reshape(-1)
            g = g_l[i].reshape(-1)
            k = min(n - 1, theta.numel())
            for slot, (values, head) in enumerate(((theta, True), (theta, False), (g, True), (g, False))):
                part = values[:k] if head else values[values.numel() - k :]
                record[row, 2 + slot * (n - 1) : 2 + slot * (n - 1) + k] = part.to(torch.float64)
        gathered = exchange(group, record.reshape(-1))
        table = torch.stack(gathered).reshape(len(gathered), len(members), width).cpu().tolist()
        for row, i in enumerate(members):
            halos[i] = [per_rank[row] for per_rank in table]
    return halos


def _global_values(piece: _Piece, records: list[list[float]], n: int) -> tuple[list[float], list[float]]:
    """The group's ``[n]`` inputs from every rank's ends (this rank's too), zeros past the tensor's end.

    The ends hold every coordinate of a crossing group: a group reaches at most ``n - 1`` past a
    shard boundary on either side, and a rank's own part of it lies in its first or last ``n - 1``.
    """
    theta, g = [0.0] * n, [0.0] * n
    spans = [(int(r[0]), int(r[1]), r) for r in records]
    for j in range(piece.g0, piece.g1):
        for start, stop, r in spans:
            if not start <= j < stop:
                continue
            k = min(n - 1, stop - start)
            if j - start < k:  # in that rank's head
                theta[j - piece.g0], g[j - piece.g0] = r[2 + j - start], r[2 + 2 * (n - 1) + j - start]
            else:  # in its tail
                index = k - (stop - j)
                theta[j - piece.g0], g[j - piece.g0] = r[2 + (n - 1) + index], r[2 + 3 * (n - 1) + index]
            break
        else:  # pragma: no cover - the records cover every crossing group by construction
            raise RuntimeError(f"no rank holds element {j} of a sharded tensor")
    return theta, g


def _piece_expectations(
    pieces: list[_Piece],
    shards: list[Shard],
    p_l: list[torch.Tensor],
    halos: dict[int, list[list[float]]],
    circuit: Circuit,
    maximize: bool,
    backend: str,
) -> list[torch.Tensor]:
    """``e`` for each piece's own coordinates, all crossing groups in one simulate call."""
    from .simulate import simulate

    n = circuit.n_qubits
    out: list[torch.Tensor | None] = [None] * len(pieces)
    # As the kernels: float64 circuits for float64 parameters, float32 for the rest.
    for dtype in (torch.float32, torch.float64):
        members = [k for k, piece in enumerate(pieces) if _math_dtype(p_l[piece.tensor]) == dtype]
        if not members:
            continue
        rows = [_global_values(pieces[k], halos[pieces[k].tensor], n) for k in members]
        device = p_l[pieces[members[0]].tensor].device
        theta = torch.tensor([r[0] for r in rows], dtype=torch.float64, device=device).to(dtype)
        g = torch.tensor([r[1] for r in rows], dtype=torch.float64, device=device).to(dtype)
        e = simulate(circuit, theta, -g if maximize else g, backend=backend)
        for row, k in enumerate(members):
            piece = pieces[k]
            first = shards[piece.tensor].start + piece.lo - piece.g0
            out[k] = e[row, first : first + piece.hi - piece.lo]
    return out


def _math_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _update_piece(
    piece: _Piece,
    p_l: list[torch.Tensor],
    g_l: list[torch.Tensor],
    m_l: list[torch.Tensor],
    v_l: list[torch.Tensor],
    step: torch.Tensor,
    e: torch.Tensor,
    quantum_weight: float,
    maximize: bool,
    *,
    lr: float | torch.Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None:
    """The fused step's formula (DESIGN.md section 2) on a piece's coordinates, in its math dtype."""
    i = piece.tensor
    p, m, v = (_flat(t[i])[piece.lo : piece.hi] for t in (p_l, m_l, v_l))
    compute = _math_dtype(p)
    g = _flat(g_l[i])[piece.lo : piece.hi].to(compute)
    if maximize:
        g = -g
    step = step.to(compute)
    updated = p.to(compute) * (1 - lr * weight_decay)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = (1 - beta2**step).sqrt()
    denom = v.sqrt() / bias_correction2_sqrt + eps
    updated = updated - lr * (m / bias_correction1) / denom
    if quantum_weight != 0:
        updated = updated - lr * quantum_weight * e.to(compute) * g
    p.copy_(updated)
