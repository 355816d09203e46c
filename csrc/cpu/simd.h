// SIMD lanes for the CPU kernels: GCC/Clang vector extensions, one lane per
// circuit. The same source is compiled once per instruction set (see
// CMakeLists.txt), so a vector of `Bytes` bytes becomes SSE, AVX2 or AVX-512
// code without intrinsics; dispatch.cpp picks the variant at run time.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace sp::cpu {

template <class T, int Bytes>
struct SimdOps {
  using S = T;
  typedef T V __attribute__((vector_size(Bytes)));
  using IS = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
  typedef IS I __attribute__((vector_size(Bytes)));
  static constexpr int kWidth = Bytes / static_cast<int>(sizeof(T));

  static inline __attribute__((always_inline)) V splat(S s) { return V{} + s; }

  static inline __attribute__((always_inline)) V load(const S* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }

  static inline __attribute__((always_inline)) void store(S* p, V v) { std::memcpy(p, &v, sizeof(V)); }

  // sin and cos of every lane. Cody-Waite reduction to r in [-pi/4, pi/4] by a
  // multiple j of pi/2, then Taylor polynomials: on that interval the first
  // omitted term is below half an ulp (float: r^11/11! < 2e-9; double:
  // r^17/17! < 5e-17). Lanes too large for the three-part reduction to stay
  // exact fall back to the C library in double precision.
  static inline __attribute__((always_inline)) void sincos(V x, V& s, V& c) {
    constexpr bool f32 = sizeof(T) == 4;
    // pi/2 split so that j * kPio2a is exact for |j| below the fallback limit.
    constexpr T kPio2a = f32 ? T(1.5703125) : T(1.57079632673412561417e+00);
    constexpr T kPio2b = f32 ? T(4.837512969970703125e-4) : T(6.07710050630396597660e-11);
    constexpr T kPio2c = f32 ? T(7.54978995489188216e-8) : T(2.02226624871116645580e-21);
    constexpr T kLimit = f32 ? T(8192) : T(1 << 20);
    const V y = x * T(0.63661977236758134308);  // 2/pi
    const I j = __builtin_convertvector(y + (y >= 0 ? splat(0.5) : splat(-0.5)), I);
    const V jf = __builtin_convertvector(j, V);
    const V r = ((x - jf * kPio2a) - jf * kPio2b) - jf * kPio2c;
    const V r2 = r * r;
    V sr, cr;
    if constexpr (f32) {
      sr = r + r * r2 * (T(-1.0 / 6) + r2 * (T(1.0 / 120) + r2 * (T(-1.0 / 5040) + r2 * T(1.0 / 362880))));
      cr = T(1) + r2 * (T(-0.5) + r2 * (T(1.0 / 24) + r2 * (T(-1.0 / 720) +
                                                             r2 * (T(1.0 / 40320) + r2 * T(-1.0 / 3628800)))));
    } else {
      sr = r + r * r2 *
                   (-1.0 / 6 + r2 * (1.0 / 120 + r2 * (-1.0 / 5040 + r2 * (1.0 / 362880 +
                   r2 * (-1.0 / 39916800 + r2 * (1.0 / 6227020800 + r2 * (-1.0 / 1307674368000)))))));
      cr = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24 + r2 * (-1.0 / 720 + r2 * (1.0 / 40320 +
                   r2 * (-1.0 / 3628800 + r2 * (1.0 / 479001600 + r2 * (-1.0 / 87178291200 +
                   r2 * (1.0 / 20922789888000))))))));
    }
    // Quadrant j mod 4: (sin, cos) = (sr, cr), (cr, -sr), (-sr, -cr), (-cr, sr).
    const I swap = (j & 1) != 0;
    const I sin_neg = (j & 2) != 0;
    const I cos_neg = ((j + 1) & 2) != 0;
    s = swap ? cr : sr;
    c = swap ? sr : cr;
    s = sin_neg ? -s : s;
    c = cos_neg ? -c : c;
    const I big = (x > kLimit) | (x < -kLimit) | (x != x);
    bool any_big = false;
    for (int l = 0; l < kWidth; ++l) any_big |= big[l] != 0;
    if (__builtin_expect(any_big, 0)) {
      for (int l = 0; l < kWidth; ++l) {
        if (big[l]) {
          s[l] = static_cast<T>(std::sin(static_cast<double>(x[l])));
          c[l] = static_cast<T>(std::cos(static_cast<double>(x[l])));
        }
      }
    }
  }
};

}  // namespace sp::cpu
