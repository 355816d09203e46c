// Stochastic rounding of 16-bit parameter writes (docs/design.md, Stochastic rounding), shared by
// the CPU and CUDA kernels: the same integer operations on both, so a step rounds the same way on
// every device, and the random bits come from a counter-based hash of (seed, parameter, step,
// element), so a resumed run draws the bits the uninterrupted run would have drawn.
#pragma once

#include <cstdint>

#include "bits.h"
#include "inline.h"

namespace sp {

// A bijective 32-bit mix with good avalanche (two multiply-xorshift rounds): cheap enough for one
// call per element in a memory-bound loop, and vectorisable (32-bit multiplies).
SP_INLINE std::uint32_t mix32(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// The key of one tensor's step: its random bits differ for every seed, parameter (its index in the
// optimizer, stable across checkpoints) and step number.
SP_INLINE std::uint32_t rounding_key(std::uint32_t seed, std::uint64_t stream, std::uint32_t step) {
  const std::uint32_t parameter = mix32(static_cast<std::uint32_t>(stream) ^ mix32(static_cast<std::uint32_t>(stream >> 32)));
  return mix32(mix32(mix32(seed) + parameter) + step);
}

// The 32 random bits of element `index` of the tensor whose step has key `key`.
SP_INLINE std::uint32_t rounding_bits(std::uint32_t key, std::int64_t index) {
  const auto i = static_cast<std::uint64_t>(index);
  return mix32(key ^ mix32(static_cast<std::uint32_t>(i) + static_cast<std::uint32_t>(i >> 32) * 0x9e3779b9U));
}

SP_INLINE int min_of(int a, int b) { return a < b ? a : b; }
SP_INLINE int max_of(int a, int b) { return a > b ? a : b; }

// x rounded to a 16-bit floating-point format with kMantissa explicit mantissa bits and smallest
// normal exponent kMinExponent (bfloat16: 7, -126; float16: 10, -14), returned as the float that
// format holds exactly. Of the two format values around x, the one farther from zero is taken with
// probability (|x| - lo) / ulp, lo the one nearer zero: E[result] = x, so many small updates add
// up where round-to-nearest would drop each. The comparison is r < (|x| - lo) / ulp * 2^32 in
// integers (r uniform on 32 bits). NaN and infinity pass through; beyond the format's largest
// value the upper neighbour is infinity, as a sum of updates there would be.
template <int kMantissa, int kMinExponent>
SP_INLINE float round_stochastically(float x, std::uint32_t r) {
  // 32-bit integer operations with clamped shift counts and selects, no branches: the CPU loop
  // vectorises it (checked with -fopt-info-vec) and GPU threads do not diverge.
  const std::uint32_t bits = float_bits(x);
  const std::uint32_t sign = bits & 0x80000000U;
  const std::uint32_t magnitude = bits ^ sign;
  const int biased = static_cast<int>(magnitude >> 23);
  const int exponent = max_of(biased, 1) - 127;  // of x's binade; float subnormals share -126
  const std::uint32_t significand = (magnitude & 0x7fffffU) | (biased > 0 ? 0x800000U : 0U);
  // |x| = significand * 2^(exponent - 23) (below 2^24 * 2^(exponent - 23)); the format's ulp at
  // |x| is 2^ulp_exponent, so the lowest `dropped_bits` (>= 23 - kMantissa) bits are rounded away.
  const int ulp_exponent = max_of(exponent, kMinExponent) - kMantissa;
  const int dropped_bits = ulp_exponent - (exponent - 23);
  const int shift = min_of(dropped_bits, 31);  // significand >> 31 is 0, as it should be
  const std::uint32_t kept = significand >> shift;
  const std::uint32_t dropped = significand - (kept << shift);  // < 2^dropped_bits
  // Round away from zero when r < dropped / 2^dropped_bits * 2^32, rounded up to an integer: for
  // at most 32 dropped bits that is dropped << (32 - dropped_bits) (< 2^32); beyond, the quotient
  // by 2^(dropped_bits - 32) rounded up (1 for any dropped > 0 once that exceeds 2^24 > dropped).
  const int up_shift = 32 - min_of(dropped_bits, 32);
  const int down_shift = min_of(max_of(dropped_bits - 32, 0), 24);
  const std::uint32_t few = dropped << up_shift;
  const std::uint32_t many = (dropped + (std::uint32_t{1} << down_shift) - 1U) >> down_shift;
  const std::uint32_t threshold = dropped_bits <= 32 ? few : many;
  const std::uint32_t units = kept + static_cast<std::uint32_t>(r < threshold);
  // 2^ulp_exponent as a float (a subnormal below 2^-126: bfloat16's subnormals); the product is a
  // value of the format, so exact.
  const std::uint32_t normal_ulp = static_cast<std::uint32_t>(max_of(ulp_exponent + 127, 0)) << 23;
  const std::uint32_t subnormal_ulp = std::uint32_t{1} << min_of(max_of(ulp_exponent + 149, 0), 22);
  const std::uint32_t ulp_bits = ulp_exponent >= -126 ? normal_ulp : subnormal_ulp;
  const float value = static_cast<float>(static_cast<std::int32_t>(units)) * bits_float(ulp_bits);  // int: vectorises
  const std::uint32_t rounded = float_bits(value) | sign;
  // Infinity comes out of the formula as itself (units * ulp overflows); a NaN would too, so its
  // quiet bits are set back. A mask, not a select of x: GCC would sink the formula into a branch
  // for the finite case and give up vectorising the loop.
  const std::uint32_t nan = 0U - static_cast<std::uint32_t>(magnitude > 0x7f800000U);
  return bits_float(rounded | (nan & 0x7fc00000U));
}

// The formats' parameters, by storage type tag.
SP_INLINE float round_bfloat16_stochastically(float x, std::uint32_t r) { return round_stochastically<7, -126>(x, r); }
SP_INLINE float round_float16_stochastically(float x, std::uint32_t r) { return round_stochastically<10, -14>(x, r); }

}  // namespace sp
