"""Param groups whose backend is a Qiskit target: their dispatchers, and their place in a checkpoint.

A target is a handle on an external device and cannot be stored: a ``state_dict`` holds
``"qiskit:<name>"`` in its place (never a credential) and, under the group's ``"qiskit"`` key, the
dispatcher's clock, last result and jobs in flight (:meth:`Dispatcher.state`). Loading keeps the
loading optimizer's backend for a group where either side is a target, and collects the jobs the
checkpoint had in flight when that backend is a target (IBM Quantum; local jobs are dropped with a
warning by the dispatcher).
"""

from __future__ import annotations

import warnings
from typing import Any

from ..backends.qiskit.dispatch import Dispatcher
from ..backends.qiskit.target import QiskitTarget

__all__ = ["STATE_KEY", "QiskitGroups", "is_qiskit"]

STATE_KEY = "qiskit"


def is_qiskit(backend: Any) -> bool:
    """A Qiskit target, or what stands for one in a state_dict (``"qiskit:<name>"``)."""
    return isinstance(backend, QiskitTarget) or (isinstance(backend, str) and backend.startswith("qiskit:"))


class QiskitGroups:
    """The dispatcher of each param group on a target, made anew when the group's target changes."""

    def __init__(self) -> None:
        self._dispatchers: dict[int, Dispatcher] = {}

    def dispatcher(self, index: int, target: QiskitTarget) -> Dispatcher:
        current = self._dispatchers.get(index)
        if current is None or current.target is not target:
            current = self._dispatchers[index] = Dispatcher(target)
        return current

    def get(self, index: int) -> Dispatcher | None:
        return self._dispatchers.get(index)

    # -- checkpoints --------------------------------------------------------------------------------

    def pack(self, saved_groups: list[dict[str, Any]]) -> None:
        """Replace each target in a ``state_dict``'s groups by its spec and add its jobs."""
        for index, group in enumerate(saved_groups):
            target = group.get("backend")
            if isinstance(target, QiskitTarget):
                group["backend"] = target.spec()
                dispatcher = self._dispatchers.get(index)
                if dispatcher is not None and dispatcher.target is target:
                    group[STATE_KEY] = dispatcher.state()

    @staticmethod
    def kept_backends(saved_groups: list[dict[str, Any]], groups: list[dict[str, Any]]) -> list[Any]:
        """Per group, the backend a load keeps (this optimizer's, where either side is a target), or
        ``None`` where the checkpoint's applies."""
        return [
            current["backend"] if is_qiskit(saved.get("backend")) or is_qiskit(current["backend"]) else None
            for saved, current in zip(saved_groups, groups)
        ]

    @staticmethod
    def check_saved(saved: dict[str, Any], kept: Any) -> None:
        """Refuse a malformed jobs record before anything is loaded."""
        if isinstance(kept, QiskitTarget) and saved.get(STATE_KEY) is not None:
            Dispatcher.parse(saved[STATE_KEY])

    def restore(self, saved_groups: list[dict[str, Any]], kept_backends: list[Any]) -> None:
        """After a load: collect the jobs of the checkpoint's groups whose kept backend is a target."""
        self._dispatchers.clear()
        for index, (saved, kept) in enumerate(zip(saved_groups, kept_backends)):
            jobs = saved.get(STATE_KEY)
            if kept is None:
                continue
            if isinstance(kept, QiskitTarget) and jobs is not None:
                self.dispatcher(index, kept).load(jobs)
            elif jobs is not None and jobs.get("pending"):
                warnings.warn(
                    f"the checkpoint had {len(jobs['pending'])} Qiskit job(s) in flight, but this "
                    f"optimizer's backend is {kept!r}: they are not collected",
                    RuntimeWarning,
                    stacklevel=3,
                )
