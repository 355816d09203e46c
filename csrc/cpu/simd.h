// SIMD lanes for the CPU kernels: GCC/Clang vector extensions, one lane per
// circuit. The same source is compiled once per instruction set (see
// CMakeLists.txt), so a vector of `Bytes` bytes becomes SSE, AVX2 or AVX-512
// code without intrinsics; dispatch.cpp picks the variant at run time.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace sp::cpu {

// True if any bit of the vector is set. A lane-by-lane loop compiles to a long
// chain of extractions; one test instruction does it where the ISA has one.
template <class I>
inline __attribute__((always_inline)) bool any_set(const I& mask) {
#if defined(__AVX512F__)
  if constexpr (sizeof(I) == 64) {
    __m512i m;
    std::memcpy(&m, &mask, sizeof m);
    return _mm512_test_epi32_mask(m, m) != 0;
  }
#endif
#if defined(__AVX__)
  if constexpr (sizeof(I) == 32) {
    __m256i m;
    std::memcpy(&m, &mask, sizeof m);
    return !_mm256_testz_si256(m, m);
  }
#endif
#if defined(__SSE2__)
  if constexpr (sizeof(I) == 16) {
    __m128i m;
    std::memcpy(&m, &mask, sizeof m);
    return _mm_movemask_epi8(m) != 0;
  }
#endif
  std::uint64_t words[sizeof(I) / 8];
  std::memcpy(words, &mask, sizeof words);
  std::uint64_t any = 0;
  for (std::uint64_t w : words) any |= w;
  return any != 0;
}

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
    // Quadrant j mod 4: (sin, cos) = (sr, cr), (cr, -sr), (-sr, -cr), (-cr, sr). The
    // signs are xor-ed into the sign bits; the selects pick which polynomial.
    const I swap = (j & 1) != 0;
    const I sign_bit = I{} + static_cast<IS>(IS(1) << (8 * sizeof(IS) - 1));
    const I sin_sign = (j & 2) != 0 ? sign_bit : I{};
    const I cos_sign = ((j + 1) & 2) != 0 ? sign_bit : I{};
    s = reinterpret_cast<V>(reinterpret_cast<I>(swap ? cr : sr) ^ sin_sign);
    c = reinterpret_cast<V>(reinterpret_cast<I>(swap ? sr : cr) ^ cos_sign);
    // Too large for the reduction, or NaN: one compare catches both.
    const V magnitude = reinterpret_cast<V>(reinterpret_cast<I>(x) & ~sign_bit);
    const I big = !(magnitude <= kLimit);
    if (__builtin_expect(any_set(big), 0)) {
      for (int l = 0; l < kWidth; ++l) {
        if (big[l]) {
          s[l] = static_cast<T>(std::sin(static_cast<double>(x[l])));
          c[l] = static_cast<T>(std::cos(static_cast<double>(x[l])));
        }
      }
    }
  }
};

// K native vectors used as one value. Every operation becomes K independent
// instructions: that hides the latency of long chains (sincos) and spreads the
// interpreter's per-gate work (reading the program, branching) over K times more
// circuits. (GCC's own oversized vectors lower poorly, hence this struct.)
template <class NV, int K>
struct Wide {
  NV part[K];
};

#define SP_WIDE_BINARY(op)                                                                          \
  template <class NV, int K>                                                                        \
  inline __attribute__((always_inline)) Wide<NV, K> operator op(const Wide<NV, K>& a, const Wide<NV, K>& b) { \
    Wide<NV, K> r;                                                                                  \
    for (int i = 0; i < K; ++i) r.part[i] = a.part[i] op b.part[i];                                 \
    return r;                                                                                       \
  }                                                                                                 \
  template <class NV, int K, class S, class = std::enable_if_t<std::is_arithmetic_v<S>>>            \
  inline __attribute__((always_inline)) Wide<NV, K> operator op(const Wide<NV, K>& a, S b) {        \
    Wide<NV, K> r;                                                                                  \
    for (int i = 0; i < K; ++i) r.part[i] = a.part[i] op b;                                         \
    return r;                                                                                       \
  }
SP_WIDE_BINARY(+)
SP_WIDE_BINARY(-)
SP_WIDE_BINARY(*)
#undef SP_WIDE_BINARY

template <class NV, int K>
inline __attribute__((always_inline)) Wide<NV, K> operator-(const Wide<NV, K>& a) {
  Wide<NV, K> r;
  for (int i = 0; i < K; ++i) r.part[i] = -a.part[i];
  return r;
}

// The lane policy of the CPU kernels: `Pieces` native vectors of `Bytes` bytes.
template <class T, int Bytes, int Pieces>
struct WideOps {
  using Native = SimdOps<T, Bytes>;
  using S = T;
  using V = Wide<typename Native::V, Pieces>;
  static constexpr int kPieces = Pieces;
  static constexpr int kWidth = Pieces * Native::kWidth;

  static inline __attribute__((always_inline)) V splat(S s) {
    V v;
    for (int i = 0; i < Pieces; ++i) v.part[i] = Native::splat(s);
    return v;
  }

  static inline __attribute__((always_inline)) V load(const S* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }

  static inline __attribute__((always_inline)) void store(S* p, const V& v) { std::memcpy(p, &v, sizeof(V)); }

  static inline __attribute__((always_inline)) void sincos(const V& x, V& s, V& c) {
    for (int i = 0; i < Pieces; ++i) Native::sincos(x.part[i], s.part[i], c.part[i]);
  }
};

}  // namespace sp::cpu
