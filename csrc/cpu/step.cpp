// The fused step on the CPU: one pass over each tensor that reads p, g, m, v
// once, evaluates each group's circuit in SIMD lanes on the values of p at the
// start of the step, and writes p, m, v (docs/design.md, The mathematics).
// Compiled once per instruction set.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "../adamw.h"
#include "../rounding.h"
#include "../statevector.h"
#include "isa.h"
#include "tiles.h"

namespace sp::cpu::SP_ISA {
namespace {

// The state tensors of one tensor's step, at an element offset, stored as M
// (the math type, or the 16-bit parameter type under state_dtype "param").
template <class M>
struct Moments {
  M* m;
  M* v;
  M* v_max;  // null without AMSGrad

  Moments at(std::int64_t offset) const { return {m + offset, v + offset, v_max ? v_max + offset : nullptr}; }
};

// What a parameter write needs beyond its value: under stochastic rounding
// (16-bit parameters), the step's rounding key and the element's index in its tensor.
struct Rounding {
  bool on;
  std::uint32_t key;
};

// x as the storage type P will hold it: rounded stochastically (rounding.h) to
// P's format when asked, so that store_as's round-to-nearest is then exact.
template <class P, class S>
inline S rounded_for(S x, std::uint32_t key, std::int64_t index) {
  if constexpr (std::is_same_v<P, BFloat16>) {
    return round_bfloat16_stochastically(x, rounding_bits(key, index));
  } else if constexpr (std::is_same_v<P, Float16>) {
    return round_float16_stochastically(x, rounding_bits(key, index));
  } else {
    return x;  // full-precision parameters are never rounded stochastically
  }
}

// AdamW (adamw.h) on `count` consecutive elements, the first at index `first`
// of its tensor, with the circuit term when kQuantum. One vector loop: the
// element update is force-inlined into it.
template <bool kQuantum, bool kAmsgrad, bool kRound, class P, class S, class M>
inline void adamw_loop(P* __restrict p, const P* __restrict g, M* __restrict m, M* __restrict v,
                       M* __restrict v_max, const S* __restrict e, std::int64_t count, const AdamWConstants<S>& c,
                       std::uint32_t key, std::int64_t first) {
#pragma omp simd
  for (std::int64_t i = 0; i < count; ++i) {
    S pi = load_as<S>(p[i]), mi = load_as<S>(m[i]), vi = load_as<S>(v[i]), wi = kAmsgrad ? load_as<S>(v_max[i]) : S(0);
    adamw_update<kQuantum ? Term::kEither : Term::kNone, kAmsgrad>(pi, mi, vi, wi, load_as<S>(g[i]) * c.grad_sign,
                                                                  kQuantum ? e[i] : S(0), c);
    m[i] = store_as<M>(mi);
    v[i] = store_as<M>(vi);
    if constexpr (kAmsgrad) v_max[i] = store_as<M>(wi);
    if constexpr (kRound) pi = rounded_for<P>(pi, key, first + i);
    p[i] = store_as<P>(pi);
  }
}

#if defined(__F16C__)
// float16 <-> float32 by F16C, 8 values an instruction (round to nearest even, as the
// portable conversions of tiles.h and torch): the vectorised integer conversions cost
// more than the rest of the update under AVX2.
inline void to_floats(const Float16* src, float* dst, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = to_float(src[i]);
}

inline void to_halves(const float* src, Float16* dst, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) dst[i] = from_float<Float16>(src[i]);
}
#endif

template <bool kQuantum, class P, class S, class M>
inline void adamw(P* p, const P* g, const Moments<M>& s, const S* e, std::int64_t count,
                  const AdamWConstants<S>& c, Rounding rounding, std::int64_t first);

#if defined(__F16C__)
// float16 parameters (and float16 states) in blocks: converted to float32 by F16C,
// stepped as float32 (the same element update), rounded stochastically where asked,
// and converted back, so each value is still rounded once.
template <bool kQuantum, class M>
inline void adamw_float16(Float16* p, const Float16* g, const Moments<M>& s, const float* e, std::int64_t count,
                          const AdamWConstants<float>& c, Rounding rounding, std::int64_t first) {
  constexpr std::int64_t kBlock = 256;
  constexpr bool kHalfStates = std::is_same_v<M, Float16>;
  alignas(64) float pf[kBlock], gf[kBlock], mf[kBlock], vf[kBlock], wf[kBlock];
  for (std::int64_t b = 0; b < count; b += kBlock) {
    const std::int64_t n = std::min(kBlock, count - b);
    to_floats(p + b, pf, n);
    to_floats(g + b, gf, n);
    Moments<float> block{mf, vf, s.v_max != nullptr ? wf : nullptr};
    if constexpr (kHalfStates) {
      to_floats(s.m + b, mf, n);
      to_floats(s.v + b, vf, n);
      if (s.v_max != nullptr) to_floats(s.v_max + b, wf, n);
    } else {
      block = s.at(b);
    }
    adamw<kQuantum>(pf, gf, block, kQuantum ? e + b : e, n, c, Rounding{false, 0}, 0);
    if (rounding.on) {
#pragma omp simd
      for (std::int64_t i = 0; i < n; ++i) pf[i] = rounded_for<Float16>(pf[i], rounding.key, first + b + i);
    }
    to_halves(pf, p + b, n);
    if constexpr (kHalfStates) {
      to_halves(mf, s.m + b, n);
      to_halves(vf, s.v + b, n);
      if (s.v_max != nullptr) to_halves(wf, s.v_max + b, n);
    }
  }
}
#endif

template <bool kQuantum, class P, class S, class M>
inline void adamw(P* p, const P* g, const Moments<M>& s, const S* e, std::int64_t count,
                  const AdamWConstants<S>& c, Rounding rounding, std::int64_t first) {
#if defined(__F16C__)
  if constexpr (std::is_same_v<P, Float16>) return adamw_float16<kQuantum>(p, g, s, e, count, c, rounding, first);
#endif
  auto run = [&](auto amsgrad, auto round) {
    adamw_loop<kQuantum, decltype(amsgrad)::value, decltype(round)::value>(p, g, s.m, s.v, s.v_max, e, count, c,
                                                                         rounding.key, first);
  };
  auto with_rounding = [&](auto amsgrad) {
    constexpr bool kMayRound = std::is_same_v<P, BFloat16> || std::is_same_v<P, Float16>;
    if constexpr (kMayRound) {
      if (rounding.on) return run(amsgrad, std::true_type{});
    }
    run(amsgrad, std::false_type{});
  };
  if (s.v_max != nullptr) {
    with_rounding(std::true_type{});
  } else {
    with_rounding(std::false_type{});
  }
}

// Elements per unit of work that one thread takes at a time: plain AdamW, and
// coverage "all" (whose chunks keep their expectations in L1).
constexpr std::int64_t kChunkElements = 1 << 14;
constexpr std::int64_t kChunkGroupsElements = 2048;

// Expectations of the circuits of a tile whose lane l reads its inputs at
// (offset(l), count(l)), written to e_out at offset(l) - base.
template <class P, int N, class Place>
inline void tile_expectations(const Program& prog, const StepTensor& t, int lanes, bool full, std::int64_t base,
                              MathOf<P> grad_sign, Place place, MathOf<P>* e_out) {
  using Ops = Lanes<MathOf<P>>;
  using V = typename Ops::V;
  const P* p = static_cast<const P*>(t.param);
  const P* g = static_cast<const P*>(t.grad);
  V theta[N], grad[N], e[N];  // an input the program never reads stays unset
  if (prog.uses_params) {
    if (full) {
      gather_full<Ops, N>(p + base, theta);
    } else {
      gather<Ops, N>(p, lanes, 1, place, theta);
    }
  }
  if (prog.uses_grads) {
    if (full) {
      gather_full<Ops, N>(g + base, grad);
    } else {
      gather<Ops, N>(g, lanes, 1, place, grad);
    }
    for (int k = 0; k < N; ++k) grad[k] = grad[k] * grad_sign;
  }
  if (prog.product_only) {
    product_expectations<Ops, N>(prog, theta, grad, e);
  } else {
    State<Ops, N> st;
    run_state<Ops, N>(prog, theta, grad, st);
    state_expectations<Ops, N>(prog, st, e);
  }
  if (full) {
    scatter_full<Ops, N>(e, e_out);
  } else {
    scatter<Ops, N>(e, lanes, [&](int l, std::int64_t& offset, int& count) {
      place(l, offset, count);
      offset -= base;
    }, e_out);
  }
}

template <class P, class M, int N>
void step_tensor(const StepParams& sp, const StepTensor& t) {
  using S = MathOf<P>;
  using Ops = Lanes<S>;
  constexpr int W = Ops::kWidth;
  if (t.numel == 0) return;
  const Program& prog = *sp.program;
  const double lr = sp.lr_device != nullptr ? static_cast<double>(*sp.lr_device) : sp.hyper.lr;
  const AdamWConstants<S> constants = adamw_constants<S>(sp.hyper, lr, static_cast<double>(*t.step));
  const Rounding rounding{sp.hyper.stochastic_rounding,
                          rounding_key(sp.hyper.rounding_seed, t.rounding_stream, static_cast<std::uint32_t>(*t.step))};
  P* p = static_cast<P*>(t.param);
  const P* g = static_cast<const P*>(t.grad);
  const Moments<M> moments{static_cast<M*>(t.exp_avg), static_cast<M*>(t.exp_avg_sq),
                           sp.hyper.amsgrad ? static_cast<M*>(t.max_exp_avg_sq) : nullptr};
  M* m = moments.m;
  M* v = moments.v;
  const bool quantum = sp.hyper.quantum_weight != 0.0;

  if (sp.coverage == Coverage::kPaper || !quantum) {
    const std::int64_t chunks = (t.numel + kChunkElements - 1) / kChunkElements;
#pragma omp for schedule(static) nowait
    for (std::int64_t c = 0; c < chunks; ++c) {
      std::int64_t begin = c * kChunkElements;
      const std::int64_t end = std::min(t.numel, begin + kChunkElements);
      if (c == 0 && quantum) {
        // The one group of the paper's coverage: the first n elements, read
        // before this same thread updates them.
        const int count = static_cast<int>(std::min<std::int64_t>(N, t.numel));
        alignas(64) S e[N];
        tile_expectations<P, N>(prog, t, 1, false, 0, constants.grad_sign,
                                [&](int, std::int64_t& offset, int& n) {
                                  offset = 0;
                                  n = count;
                                },
                                e);
        adamw<true>(p, g, moments, e, count, constants, rounding, 0);
        begin = count;
      }
      adamw<false>(p + begin, g + begin, moments.at(begin), static_cast<const S*>(nullptr), end - begin, constants,
                   rounding, begin);
    }
    return;
  }

  // Coverage "all": groups of N consecutive elements of each row, in order;
  // consecutive groups cover consecutive elements, so a tile of W groups is one
  // contiguous range.
  const std::int64_t row = t.row_length;
  const std::int64_t groups_per_row = (row + N - 1) / N;
  const std::int64_t groups = (t.numel / row) * groups_per_row;
  const bool rows_divide = row % N == 0;
  const std::int64_t tiles = (groups + W - 1) / W;
  // A chunk's circuits all run before its AdamW pass, so that pass is one long
  // vector loop and e stays in L1.
  constexpr std::int64_t kTilesPerChunk = std::max<std::int64_t>(1, kChunkGroupsElements / (W * N));
  const std::int64_t chunks = (tiles + kTilesPerChunk - 1) / kTilesPerChunk;
  auto locate = [&](std::int64_t q, std::int64_t& offset, int& count) {
    if (rows_divide) {
      offset = q * N;
      count = N;
      return;
    }
    const std::int64_t r = q / groups_per_row, k = q % groups_per_row;
    offset = r * row + k * N;
    count = static_cast<int>(std::min<std::int64_t>(N, row - k * N));
  };
#pragma omp for schedule(static) nowait
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t first_tile = c * kTilesPerChunk;
    const std::int64_t last_group = std::min(groups, (first_tile + kTilesPerChunk) * W) - 1;
    std::int64_t begin, last_offset;
    int count;
    locate(first_tile * W, begin, count);
    locate(last_group, last_offset, count);
    const std::int64_t end = last_offset + count;
    alignas(64) S e[kTilesPerChunk * W * N];
    for (std::int64_t tile = first_tile; tile * W <= last_group; ++tile) {
      const std::int64_t q0 = tile * W;
      const int lanes = static_cast<int>(std::min<std::int64_t>(W, groups - q0));
      auto place = [&](int l, std::int64_t& offset, int& n) { locate(q0 + l, offset, n); };
      std::int64_t tile_begin;
      place(0, tile_begin, count);
      // While the circuits compute, bring in the m and v lines this tile's
      // AdamW pass will touch, a few per tile so the loads stay spread out.
      for (std::int64_t i = tile_begin; i < std::min(end, tile_begin + W * N); i += 64 / sizeof(M)) {
        __builtin_prefetch(m + i, 1, 3);
        __builtin_prefetch(v + i, 1, 3);
      }
      tile_expectations<P, N>(prog, t, lanes, rows_divide && lanes == W, tile_begin, constants.grad_sign, place,
                              e + (tile_begin - begin));
    }
    adamw<true>(p + begin, g + begin, moments.at(begin), e, end - begin, constants, rounding, begin);
  }
}

// Elements below which a thread of the step's team is not worth waking: one chunk.
constexpr std::int64_t kElementsPerThread = kChunkElements;

template <class P, class M, int N>
void step_all_tensors(const StepParams& sp) {
  std::int64_t elements = 0;
  for (int i = 0; i < sp.n_tensors; ++i) elements += sp.tensors[i].numel;
  const int team = team_size(sp, elements, kElementsPerThread);
#pragma omp parallel num_threads(team) if (team > 1)
  for (int i = 0; i < sp.n_tensors; ++i) step_tensor<P, M, N>(sp, sp.tensors[i]);
}

// P the parameters' storage type; a 16-bit P keeps its states in float32 or in P itself.
template <class P>
void step_typed(const StepParams& sp) {
  with_qubit_count(sp.program->n_qubits, [&](auto n) {
    constexpr int N = decltype(n)::value;
    if constexpr (!std::is_same_v<P, MathOf<P>>) {
      if (sp.state_type != ParamType::kFloat32) return step_all_tensors<P, P, N>(sp);
    }
    step_all_tensors<P, MathOf<P>, N>(sp);
  });
}

}  // namespace

void step(const StepParams& sp) {
  // Every tensor's step counter moves first, serially; the parallel pass reads them.
  for (int i = 0; i < sp.n_tensors; ++i) *sp.tensors[i].step += 1.0f;
  switch (sp.dtype) {
    case ParamType::kFloat32: return step_typed<float>(sp);
    case ParamType::kFloat64: return step_typed<double>(sp);
    case ParamType::kBFloat16: return step_typed<BFloat16>(sp);
    case ParamType::kFloat16: return step_typed<Float16>(sp);
  }
}

}  // namespace sp::cpu::SP_ISA
