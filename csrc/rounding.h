// Stochastic rounding of 16-bit parameter writes (docs/design.md, Stochastic rounding), shared by
// the CPU and CUDA kernels: the same integer operations on both, so a step rounds the same way on
// every device, and the random bits come from a counter-based hash of (seed, parameter, step,
// element), so a resumed run draws the bits the uninterrupted run would have drawn.
#pragma once

#include <cstdint>
#include <cstring>

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

SP_INLINE std::uint32_t float_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

SP_INLINE float bits_float(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// x rounded to a 16-bit floating-point format with kMantissa explicit mantissa bits and smallest
// normal exponent kMinExponent (bfloat16: 7, -126; float16: 10, -14), returned as the float that
// format holds exactly. Of the two format values around x, the one farther from zero is taken with
// probability (|x| - lo) / ulp, lo the one nearer zero: E[result] = x, so many small updates add
// up where round-to-nearest would drop each. The comparison is r < (|x| - lo) / ulp * 2^32 in
// integers (r uniform on 32 bits). NaN and infinity pass through; beyond the format's largest
// value the upper neighbour is infinity, as a sum of updates there would be.
template <int kMantissa, int kMinExponent>
SP_INLINE float round_stochastically(float x, std::uint32_t r) {
  const std::uint32_t bits = float_bits(x);
  const std::uint32_t sign = bits & 0x80000000U;
  const std::uint32_t magnitude = bits ^ sign;
  if (magnitude >= 0x7f800000U) return x;
  const int biased = static_cast<int>(magnitude >> 23);
  const int exponent = (biased > 0 ? biased : 1) - 127;  // of x's binade; float subnormals share -126
  const std::uint32_t significand = (magnitude & 0x7fffffU) | (biased > 0 ? 0x800000U : 0U);
  // |x| = significand * 2^(exponent - 23); the format's ulp at |x| is 2^ulp_exponent.
  const int ulp_exponent = (exponent > kMinExponent ? exponent : kMinExponent) - kMantissa;
  const int dropped_bits = ulp_exponent - (exponent - 23);  // >= 23 - kMantissa
  const std::uint64_t kept = dropped_bits >= 32 ? 0 : significand >> dropped_bits;
  const std::uint64_t dropped = dropped_bits >= 32 ? significand : significand - (kept << dropped_bits);
  // threshold = dropped / 2^dropped_bits * 2^32, rounded up: r < threshold exactly when r is below
  // the real-valued probability times 2^32.
  std::uint64_t threshold;
  if (dropped_bits <= 32) {
    threshold = dropped << (32 - dropped_bits);
  } else if (dropped_bits <= 56) {
    const int shift = dropped_bits - 32;
    threshold = (dropped + (std::uint64_t{1} << shift) - 1) >> shift;
  } else {
    threshold = dropped != 0 ? 1 : 0;  // dropped < 2^24 <= 2^(dropped_bits - 32)
  }
  const std::uint64_t units = kept + (r < threshold ? 1 : 0);
  // 2^ulp_exponent as a float (a subnormal below 2^-126: bfloat16's subnormals); the product is a
  // value of the format, so exact.
  const float ulp = ulp_exponent >= -126 ? bits_float(static_cast<std::uint32_t>(ulp_exponent + 127) << 23)
                                         : bits_float(std::uint32_t{1} << (ulp_exponent + 149));
  const float rounded = static_cast<float>(units) * ulp;
  return bits_float(float_bits(rounded) | sign);
}

// The formats' parameters, by storage type tag.
SP_INLINE float round_bfloat16_stochastically(float x, std::uint32_t r) { return round_stochastically<7, -126>(x, r); }
SP_INLINE float round_float16_stochastically(float x, std::uint32_t r) { return round_stochastically<10, -14>(x, r); }

}  // namespace sp
