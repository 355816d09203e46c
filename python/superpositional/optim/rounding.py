r"""Stochastic rounding of 16-bit parameter writes, in PyTorch: the reference the kernels
(``csrc/rounding.h``) are tested against, and the rounding of the steps that write parameters from
Python (the torch and Aer backends).

A value ``x`` between the neighbouring values ``lo`` (nearer zero) and ``lo + ulp`` of a 16-bit
format becomes ``lo + ulp`` with probability :math:`(|x| - |lo|) / \mathrm{ulp}`, else ``lo``, so
that :math:`E[\mathrm{round}(x)] = x`. The decision compares 32 random bits ``r`` with that
probability times :math:`2^{32}`. The bits come from a counter-based hash (the same 32-bit mix as
the kernels) of the seed, the parameter's index in its optimizer, the step number and the element's
index: the same bits on every device and after a resume. The rounding itself is computed here with
float64 arithmetic (``frexp``, ``floor``), independently of the kernels' integer formulation.
"""

from __future__ import annotations

import torch

__all__ = ["FORMATS", "round_stochastically", "rounding_bits", "rounding_key"]

_MASK = 0xFFFFFFFF

# (explicit mantissa bits, smallest normal exponent) of each 16-bit format.
FORMATS = {torch.bfloat16: (7, -126), torch.float16: (10, -14)}


def _mix(x: int) -> int:
    """The kernels' 32-bit mix (``mix32`` in ``csrc/rounding.h``) on a Python int."""
    x &= _MASK
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _MASK
    x ^= x >> 15
    x = (x * 0x846CA68B) & _MASK
    return x ^ (x >> 16)


def _mix_tensor(x: torch.Tensor) -> torch.Tensor:
    """:func:`_mix` elementwise on an int64 tensor of 32-bit values (products wrap mod 2^64, so
    their low 32 bits are exact)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK
    return x ^ (x >> 16)


def rounding_key(seed: int, stream: int, step: int) -> int:
    """The key of one tensor's step (``rounding_key`` in ``csrc/rounding.h``)."""
    parameter = _mix((stream & _MASK) ^ _mix(stream >> 32))
    return _mix((_mix((_mix(seed) + parameter) & _MASK) + step) & _MASK)


def rounding_bits(key: int, index: torch.Tensor) -> torch.Tensor:
    """The 32 random bits (as int64) of the elements at ``index`` (int64) of the keyed tensor."""
    low, high = index & _MASK, index >> 32
    return _mix_tensor(key ^ _mix_tensor((low + high * 0x9E3779B9) & _MASK))


def round_stochastically(x: torch.Tensor, dtype: torch.dtype, bits: torch.Tensor) -> torch.Tensor:
    """``x`` (float32) rounded stochastically to ``dtype`` (bfloat16 or float16) with random ``bits``
    (int64 in ``[0, 2^32)``, one per element). NaN and infinity convert as they are; beyond the
    format's largest value the upper neighbour is infinity."""
    mantissa, min_exponent = FORMATS[dtype]
    magnitude = x.double().abs()
    _, exponent = torch.frexp(magnitude)  # magnitude = f * 2^exponent, f in [0.5, 1)
    ulp = torch.pow(2.0, (exponent - 1).clamp(min=min_exponent).double() - mantissa)
    lower = torch.floor(magnitude / ulp) * ulp
    up = bits.double() < (magnitude - lower) / ulp * 2.0**32
    rounded = torch.copysign(lower + up.double() * ulp, x.double()).to(dtype)
    return torch.where(torch.isfinite(x), rounded, x.to(dtype))
