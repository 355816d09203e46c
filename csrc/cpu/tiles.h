// Moving tiles of circuits between memory (one circuit's n inputs or outputs
// next to each other) and SIMD lanes (one vector per qubit, one lane per
// circuit), with the storage-type conversions of the fused step.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "../bits.h"
#include "../params.h"
#include "simd.h"

namespace sp::cpu {

// Parameter storage types the step reads and writes. The 16-bit types are kept as
// their bits and converted with 32-bit integer and float operations, without
// branches, so the step's loops vectorise (GCC 12 does not vectorise _Float16
// without AVX512-FP16, and converted it element by element through a library
// call without F16C). Conversions round to nearest even, as torch does.
struct BFloat16 {
  std::uint16_t bits;
};

struct Float16 {
  std::uint16_t bits;
};

inline float to_float(BFloat16 x) { return bits_float(static_cast<std::uint32_t>(x.bits) << 16); }

// IEEE half to float, exactly: the exponent rebiased; subnormals renormalised by one
// float subtraction; infinity and NaN keep an all-ones exponent.
inline float to_float(Float16 x) {
  const std::uint32_t h = x.bits;
  const std::uint32_t shifted = (h & 0x7fffU) << 13;  // exponent and mantissa in float position
  const std::uint32_t exponent = shifted & 0x0f800000U;
  const std::uint32_t rebiased = shifted + ((127U - 15U) << 23);
  const std::uint32_t special = rebiased + ((128U - 16U) << 23);  // infinity, NaN
  // A subnormal m * 2^-24 reads as 2^-14 * (1 + m / 1024) after rebiasing: subtract 2^-14.
  const std::uint32_t subnormal = float_bits(bits_float(rebiased + (1U << 23)) - bits_float(113U << 23));
  const std::uint32_t magnitude = exponent == 0x0f800000U ? special : exponent == 0 ? subnormal : rebiased;
  return bits_float(magnitude | ((h & 0x8000U) << 16));
}

template <class To>
inline To from_float(float f);

template <>
inline BFloat16 from_float<BFloat16>(float f) {
  std::uint32_t u = float_bits(f);
  const std::uint32_t rounded = (u + 0x7fffU + ((u >> 16) & 1U)) >> 16;
  const bool nan = (u & 0x7fffffffU) > 0x7f800000U;
  return BFloat16{static_cast<std::uint16_t>(nan ? 0x7fc0U | ((u >> 16) & 0x8000U) : rounded)};
}

// Float to IEEE half, rounding to nearest even: normal results by integer rounding of
// the rebiased bits (a carry into the exponent is the right result, up to infinity);
// results below 2^-14 by one float addition that leaves the rounded subnormal's bits at
// the bottom; beyond the largest finite half, infinity; NaN stays a quiet NaN.
template <>
inline Float16 from_float<Float16>(float f) {
  const std::uint32_t u = float_bits(f);
  const std::uint32_t sign = (u >> 16) & 0x8000U;
  const std::uint32_t a = u & 0x7fffffffU;
  const std::uint32_t normal = (a + ((15U - 127U) << 23) + 0xfffU + ((a >> 13) & 1U)) >> 13;
  const std::uint32_t subnormal = float_bits(bits_float(a) + bits_float(126U << 23)) - (126U << 23);  // + 0.5
  const std::uint32_t overflow = a > 0x7f800000U ? 0x7e00U : 0x7c00U;  // NaN : infinity
  const std::uint32_t magnitude = a >= 0x47800000U ? overflow : a < 0x38800000U ? subnormal : normal;
  return Float16{static_cast<std::uint16_t>(magnitude | sign)};
}

// Load a storage value as the math type S, and store S back to storage.
template <class S, class P>
inline S load_as(const P& x) {
  if constexpr (std::is_same_v<P, BFloat16> || std::is_same_v<P, Float16>) {
    return static_cast<S>(to_float(x));
  } else {
    return static_cast<S>(x);
  }
}

template <class P, class S>
inline P store_as(S x) {
  if constexpr (std::is_same_v<P, BFloat16> || std::is_same_v<P, Float16>) {
    return from_float<P>(static_cast<float>(x));
  } else {
    return static_cast<P>(x);
  }
}

// Permutations between memory order (circuit after circuit, n values each) and
// lane order (one native vector per qubit), for a full tile of native-width
// circuits with n a power of two: log2(n) rounds of two-source shuffles (the perfect-shuffle network).
// Other n go through a small buffer.
template <class Ops>
struct Shuffle {
  using V = typename Ops::V;
  using I = typename Ops::I;
  using IS = typename Ops::IS;
  static constexpr int W = Ops::kWidth;

  template <class F, std::size_t... L>
  static constexpr I mask(F f, std::index_sequence<L...>) {
    return I{static_cast<IS>(f(static_cast<int>(L)))...};
  }
  static constexpr I kEven = mask([](int i) { return 2 * i; }, std::make_index_sequence<W>{});
  static constexpr I kOdd = mask([](int i) { return 2 * i + 1; }, std::make_index_sequence<W>{});
  static constexpr I kLow = mask([](int i) { return i / 2 + (i % 2) * W; }, std::make_index_sequence<W>{});
  static constexpr I kHigh = mask([](int i) { return W / 2 + i / 2 + (i % 2) * W; }, std::make_index_sequence<W>{});

  // v[0..n) in memory order -> v[k] = qubit k of every lane.
  template <int N>
  static inline __attribute__((always_inline)) void to_lanes(V* v) {
    for (int round = 1; round < N; round *= 2) {
      V next[N];
      for (int i = 0; i < N / 2; ++i) {
        next[i] = __builtin_shuffle(v[2 * i], v[2 * i + 1], kEven);
        next[N / 2 + i] = __builtin_shuffle(v[2 * i], v[2 * i + 1], kOdd);
      }
      for (int i = 0; i < N; ++i) v[i] = next[i];
    }
  }

  // The inverse of to_lanes.
  template <int N>
  static inline __attribute__((always_inline)) void to_memory(V* v) {
    for (int round = 1; round < N; round *= 2) {
      V next[N];
      for (int i = 0; i < N / 2; ++i) {
        next[2 * i] = __builtin_shuffle(v[i], v[N / 2 + i], kLow);
        next[2 * i + 1] = __builtin_shuffle(v[i], v[N / 2 + i], kHigh);
      }
      for (int i = 0; i < N; ++i) v[i] = next[i];
    }
  }
};

constexpr bool is_power_of_two(int n) { return n > 0 && (n & (n - 1)) == 0; }

// A full tile: lane l reads src[l * N + k].
template <class Ops, int N, class P>
inline void gather_full(const P* src, typename Ops::V* dst) {
  using S = typename Ops::S;
  constexpr int W = Ops::kWidth;
  if constexpr (std::is_same_v<P, S> && is_power_of_two(N)) {
    using Native = typename Ops::Native;
    constexpr int w = Native::kWidth;
    for (int piece = 0; piece < Ops::kPieces; ++piece) {
      typename Native::V v[N];
      for (int i = 0; i < N; ++i) v[i] = Native::load(src + piece * w * N + i * w);
      Shuffle<Native>::template to_lanes<N>(v);
      for (int k = 0; k < N; ++k) dst[k].part[piece] = v[k];
    }
  } else {
    alignas(64) S buf[N][W];
    for (int l = 0; l < W; ++l)
      for (int k = 0; k < N; ++k) buf[k][l] = load_as<S>(src[l * N + k]);
    for (int k = 0; k < N; ++k) dst[k] = Ops::load(buf[k]);
  }
}

template <class Ops, int N, class P, class Place>
inline void gather(const P* src, int lanes, std::int64_t col_stride, Place place, typename Ops::V* dst) {
  using S = typename Ops::S;
  constexpr int W = Ops::kWidth;
  alignas(64) S buf[N][W];
  for (int l = 0; l < W; ++l) {
    std::int64_t offset = 0;
    int count = 0;
    if (l < lanes) place(l, offset, count);
    for (int k = 0; k < N; ++k) buf[k][l] = k < count ? load_as<S>(src[offset + k * col_stride]) : S(0);
  }
  for (int k = 0; k < N; ++k) dst[k] = Ops::load(buf[k]);
}

// The inverse of gather for outputs: lane l writes k < count(l) values.
template <class Ops, int N, class Place>
inline void scatter(const typename Ops::V* src, int lanes, Place place, typename Ops::S* dst) {
  using S = typename Ops::S;
  constexpr int W = Ops::kWidth;
  alignas(64) S buf[N][W];
  for (int k = 0; k < N; ++k) Ops::store(buf[k], src[k]);
  for (int l = 0; l < lanes; ++l) {
    std::int64_t offset = 0;
    int count = 0;
    place(l, offset, count);
    for (int k = 0; k < count; ++k) dst[offset + k] = buf[k][l];
  }
}

// A full tile: lane l writes dst[l * N + k].
template <class Ops, int N>
inline void scatter_full(const typename Ops::V* src, typename Ops::S* dst) {
  using S = typename Ops::S;
  constexpr int W = Ops::kWidth;
  if constexpr (is_power_of_two(N)) {
    using Native = typename Ops::Native;
    constexpr int w = Native::kWidth;
    for (int piece = 0; piece < Ops::kPieces; ++piece) {
      typename Native::V v[N];
      for (int k = 0; k < N; ++k) v[k] = src[k].part[piece];
      Shuffle<Native>::template to_memory<N>(v);
      for (int i = 0; i < N; ++i) Native::store(dst + piece * w * N + i * w, v[i]);
    }
  } else {
    alignas(64) S buf[N][W];
    for (int k = 0; k < N; ++k) Ops::store(buf[k], src[k]);
    for (int l = 0; l < W; ++l)
      for (int k = 0; k < N; ++k) dst[l * N + k] = buf[k][l];
  }
}

// Rows [row0, row0 + lanes) of a strided [batch, N] matrix as N lane vectors.
template <class Ops, int N>
inline void load_rows(const typename Ops::S* src, const std::int64_t* stride, std::int64_t row0, int lanes,
                      typename Ops::V* dst) {
  if (lanes == Ops::kWidth && stride[0] == N && stride[1] == 1) {
    gather_full<Ops, N>(src + row0 * N, dst);
    return;
  }
  gather<Ops, N>(src, lanes, stride[1], [&](int l, std::int64_t& offset, int& count) {
    offset = (row0 + l) * stride[0];
    count = N;
  }, dst);
}

// N lane vectors to rows [row0, row0 + lanes) of a contiguous [batch, N] matrix.
template <class Ops, int N>
inline void store_rows(const typename Ops::V* src, std::int64_t row0, int lanes, typename Ops::S* dst) {
  if (lanes == Ops::kWidth) {
    scatter_full<Ops, N>(src, dst + row0 * N);
    return;
  }
  scatter<Ops, N>(src, lanes, [&](int l, std::int64_t& offset, int& count) {
    offset = (row0 + l) * N;
    count = N;
  }, dst);
}

// A batch of circuits (simulate, backward) as tiles of one circuit per lane:
// tile t holds circuits [row0, row0 + lanes). It loads a tile's [batch, N]
// inputs where the program reads them; an input it never reads keeps whatever
// the caller put in its lanes.
template <class Ops, int N>
struct BatchTiles {
  using S = typename Ops::S;
  using V = typename Ops::V;
  static constexpr int W = Ops::kWidth;

  struct Tile {
    std::int64_t row0;
    int lanes;
  };

  explicit BatchTiles(const BatchParams& p)
      : count((p.batch + W - 1) / W),
        batch(p.batch),
        params(static_cast<const S*>(p.params)),
        grads(static_cast<const S*>(p.grads)),
        params_stride(p.params_stride),
        grads_stride(p.grads_stride),
        read_params(p.program->uses_params),
        read_grads(p.program->uses_grads) {}

  inline Tile operator[](std::int64_t tile) const {
    const std::int64_t row0 = tile * W;
    return {row0, static_cast<int>(std::min<std::int64_t>(W, batch - row0))};
  }

  inline void load_inputs(const Tile& t, V* theta, V* grad) const {
    if (read_params) load_rows<Ops, N>(params, params_stride, t.row0, t.lanes, theta);
    if (read_grads) load_rows<Ops, N>(grads, grads_stride, t.row0, t.lanes, grad);
  }

  const std::int64_t count;  // tiles
  const std::int64_t batch;

 private:
  const S* params;
  const S* grads;
  const std::int64_t* params_stride;
  const std::int64_t* grads_stride;
  bool read_params;
  bool read_grads;
};

}  // namespace sp::cpu
