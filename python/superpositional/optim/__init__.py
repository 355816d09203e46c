"""The optimizer: :class:`SuperpositionalAdamW`, its update rule and how its steps run.

:mod:`.adamw` (the class), :mod:`.functional` (one step function that picks a strategy),
:mod:`.update` (the update rule in PyTorch), :mod:`.sharded` (FSDP2), :mod:`.qiskit_step` and
:mod:`.qiskit_groups` (Qiskit targets), :mod:`.ops` (the step as a ``torch.compile``-able custom
op), :mod:`.options` (checked param-group options).
"""

from .adamw import SuperpositionalAdamW
from .functional import superpositional_adamw

__all__ = ["SuperpositionalAdamW", "superpositional_adamw"]
