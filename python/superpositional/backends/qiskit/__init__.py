"""Qiskit backends (IBM Quantum hardware, fake devices, Aer) as targets for circuits.

Layers, each importing only those above it: :mod:`.target` (what a target is: the backend, its
options, credential hygiene), :mod:`.worker` (the child process that simulates local backends),
:mod:`.jobs` (ISA circuits, PUBs, the Estimator; waiting for a job or watching it in the
background) and :mod:`.dispatch` (the optimizer's jobs in flight, refresh and staleness rules). The
optimizer's step on a target is ``superpositional.optim.qiskit_step``.
"""

from .target import ENV_BACKEND, QiskitTarget, QiskitTargetWarning, describe_from_env, redact

__all__ = ["ENV_BACKEND", "QiskitTarget", "QiskitTargetWarning", "describe_from_env", "redact"]
