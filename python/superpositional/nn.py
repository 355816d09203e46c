r"""Layers built on the circuits: the paper's Quantum Attention and a small Quantum Transformer.

Quantum Attention (the paper's Eq. 3-5) adds a circuit term to the attention logits:

.. math::

    \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\Big(\frac{QK^\top}{\sqrt{d_k}} + \Phi\Big) V,
    \qquad \Phi_{ijh} = \sum_k \langle X_k \rangle_{C(\theta_h + s_{ijh},\ \phi_h)}

where ``C`` is :func:`superpositional.circuits.attention`: on each qubit ``k``, ``H``, then
``RY(theta_hk + s_ijh)``, then ``RZ(phi_hk)``, then a CNOT chain. The paper does not say how the
score enters the circuit; **our choice** is to add the scaled score ``s_ijh = q_i . k_j / sqrt(d_k)``
of head ``h`` to every qubit's RY angle (an extra rotation about the same axis), and to measure X so
that the learned RZ phases ``phi_h`` matter. ``theta_h`` and ``phi_h`` are learned per head. The
circuit runs in our kernels, forward and backward (the adjoint method).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import circuits
from .simulate import simulate

__all__ = ["QuantumAttention", "QuantumTransformer", "QuantumTransformerLayer"]


class QuantumAttention(nn.Module):
    """Multi-head self-attention with the circuit term ``Phi`` added to the logits.

    Args:
        embed_dim: model width (divisible by ``num_heads``).
        num_heads: attention heads; each has its own circuit angles.
        n_qubits: qubits of the attention circuit.
        dropout: dropout on the attention weights.
        quantum: ``False`` gives plain multi-head attention (the classical baseline).
        backend: simulation backend (``"auto"``: the kernel of the inputs' device).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        n_qubits: int = 4,
        dropout: float = 0.0,
        quantum: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.out = nn.Linear(embed_dim, embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.quantum = quantum
        self.backend = backend
        self.circuit = circuits.attention(n_qubits)
        self.theta = nn.Parameter(0.1 * torch.randn(num_heads, n_qubits))
        self.phi = nn.Parameter(0.1 * torch.randn(num_heads, n_qubits))

    def circuit_term(self, scores: torch.Tensor) -> torch.Tensor:
        """``Phi`` for scores ``[B, H, L, L]``: one circuit per score, summed over its qubits."""
        n = self.circuit.n_qubits
        theta = self.theta[None, :, None, None, :] + scores[..., None]
        phi = self.phi[None, :, None, None, :].expand_as(theta)
        return simulate(self.circuit, theta, phi, backend=self.backend).sum(dim=-1) if n else scores

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``[B, L, E]``; ``padding_mask``: ``[B, L]``, true where a position is padding."""
        batch, length, embed = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if self.quantum:
            scores = scores + self.circuit_term(scores)
        if padding_mask is not None:
            scores = scores.masked_fill(padding_mask[:, None, None, :], float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))
        return self.out((weights @ v).transpose(1, 2).reshape(batch, length, embed))


class QuantumTransformerLayer(nn.Module):
    """A pre-norm Transformer encoder layer around an ``attention`` module (a :class:`QuantumAttention`)."""

    def __init__(self, attention: QuantumAttention, ff_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        embed_dim = attention.out.out_features
        self.attention = attention
        self.norm1 = nn.LayerNorm(embed_dim)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.ff = nn.Sequential(
            nn.Linear(embed_dim, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, embed_dim)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.norm1(x), padding_mask))
        return x + self.dropout(self.ff(self.norm2(x)))


class QuantumTransformer(nn.Module):
    """The paper's Table II classifier: token and position embeddings, encoder layers, mean pooling.

    Defaults follow Table II: embedding 64, 4 heads, feed-forward 128, 2 layers, dropout 0.1, a
    4-qubit circuit in every attention layer.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        max_length: int,
        embed_dim: int = 64,
        num_heads: int = 4,
        ff_dim: int = 128,
        num_layers: int = 2,
        dropout: float = 0.1,
        n_qubits: int = 4,
        quantum: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, embed_dim)
        self.positions = nn.Embedding(max_length, embed_dim)
        self.layers = nn.ModuleList(
            QuantumTransformerLayer(
                QuantumAttention(embed_dim, num_heads, n_qubits, dropout, quantum, backend), ff_dim, dropout
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens``: ``[B, L]`` integer ids; returns class logits ``[B, C]``."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tokens(tokens) + self.positions(positions)[None]
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x).mean(dim=1))
