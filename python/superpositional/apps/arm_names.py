"""The names of the optimizer arms that the demo and ``finetune`` compare, and their old names.

An arm is named after its optimizer: ``sp-adamw-L`` is ``SuperpositionalAdamW`` with lambda
(``quantum_weight``) ``L``, and ``sp-adamw-all-L`` the same with ``coverage="all"``. Earlier
versions called them ``sgd-L`` after the paper's method ("Superpositional Gradient Descent"),
which most people read as plain SGD; those names are still accepted on the command line.

Imports nothing heavy: the command line builds its ``--help`` from these names before torch loads.
"""

from __future__ import annotations

__all__ = ["ALIASES", "DEMO_ARMS", "DESCRIPTIONS", "FINETUNE_ARMS", "canonical", "legend"]

DEMO_ARMS = ("adam", "sp-adamw-0.1", "sp-adamw-0.5", "sp-adamw-all-0.5")
FINETUNE_ARMS = ("adamw", "sp-adamw-0.1", "sp-adamw-0.5", "sp-adamw-all-0.5")

# Old name -> current name (bench/h200.sh and recorded commands use the old ones).
ALIASES = {"sgd-0.1": "sp-adamw-0.1", "sgd-0.5": "sp-adamw-0.5", "sgd-all-0.5": "sp-adamw-all-0.5"}

_PAPER = 'coverage "paper", circuits.paper(4) (the paper\'s Eq. 1-2)'
DESCRIPTIONS = {
    "adam": "torch.optim.AdamW, weight decay 0 (Adam)",
    "adamw": "torch.optim.AdamW",
    "sp-adamw-0.1": f"SuperpositionalAdamW, lambda 0.1, {_PAPER}",
    "sp-adamw-0.5": f"SuperpositionalAdamW, lambda 0.5, {_PAPER}",
    "sp-adamw-all-0.5": (
        'SuperpositionalAdamW, lambda 0.5, coverage "all", circuits.entangled(4) (our extension)'
    ),
}


def canonical(name: str) -> str:
    """The current name of arm ``name`` (an old name is translated; any other name is returned as is)."""
    return ALIASES.get(name, name)


def legend(names: list[str]) -> str:
    """One line per named arm saying which optimizer it is (names without a description left out)."""
    return "\n".join(f"  {name}: {DESCRIPTIONS[name]}" for name in names if name in DESCRIPTIONS)
