// A float's bits and back, for the code that works on floating-point formats in
// integers (stochastic rounding, the CPU's 16-bit conversions): memcpy, which
// compilers turn into a register move and which is defined behaviour.
#pragma once

#include <cstdint>
#include <cstring>

#include "inline.h"

namespace sp {

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

}  // namespace sp
