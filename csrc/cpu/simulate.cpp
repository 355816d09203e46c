// Batched simulation on the CPU: OpenMP across tiles of circuits, SIMD lanes
// across the circuits of a tile. Compiled once per instruction set.
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "../statevector.h"
#include "isa.h"

namespace sp::cpu::SP_ISA {
namespace {

// Gathers a [lanes, N] tile of a strided [batch, N] matrix into N lane vectors;
// missing lanes of the last tile read 0. Full tiles of row-major input take a
// path with compile-time indices, which the compiler turns into shuffles.
template <class Ops, int N>
inline void load_tile(const typename Ops::S* src, const std::int64_t* stride, std::int64_t row0, int lanes,
                      typename Ops::V* dst) {
  using S = typename Ops::S;
  constexpr int W = Ops::kWidth;
  alignas(64) S buf[N][W];
  if (lanes == W && stride[0] == N && stride[1] == 1) {
    const S* tile = src + row0 * N;
    for (int l = 0; l < W; ++l)
      for (int k = 0; k < N; ++k) buf[k][l] = tile[l * N + k];
  } else {
    for (int l = 0; l < W; ++l)
      for (int k = 0; k < N; ++k) buf[k][l] = l < lanes ? src[(row0 + l) * stride[0] + k * stride[1]] : S(0);
  }
  for (int k = 0; k < N; ++k) dst[k] = Ops::load(buf[k]);
}

template <class Ops, int N>
inline void store_tile(const typename Ops::V* src, std::int64_t row0, int lanes, typename Ops::S* dst) {
  using S = typename Ops::S;
  constexpr int W = Ops::kWidth;
  alignas(64) S buf[N][W];
  for (int k = 0; k < N; ++k) Ops::store(buf[k], src[k]);
  S* tile = dst + row0 * N;
  if (lanes == W) {
    for (int l = 0; l < W; ++l)
      for (int k = 0; k < N; ++k) tile[l * N + k] = buf[k][l];
  } else {
    for (int l = 0; l < lanes; ++l)
      for (int k = 0; k < N; ++k) tile[l * N + k] = buf[k][l];
  }
}

template <class Ops, int N>
inline void store_state(const State<Ops, N>& st, std::int64_t row0, int lanes, typename Ops::S* dst) {
  constexpr std::int64_t kDim = State<Ops, N>::kDim;
  for (int i = 0; i < kDim; ++i) {
    for (int l = 0; l < lanes; ++l) {
      typename Ops::S* amp = dst + 2 * ((row0 + l) * kDim + i);
      amp[0] = st.re[i][l];
      amp[1] = st.im[i][l];
    }
  }
}

template <class T, int N>
void simulate_n(const Program& prog, const SimulateParams& p) {
  using Ops = Lanes<T>;
  using V = typename Ops::V;
  constexpr int W = Ops::kWidth;
  const T* params = static_cast<const T*>(p.params);
  const T* grads = static_cast<const T*>(p.grads);
  T* out = static_cast<T*>(p.out);
  T* state = static_cast<T*>(p.state);
  const bool read_params = prog.uses_params, read_grads = prog.uses_grads;
  const std::int64_t tiles = (p.batch + W - 1) / W;
  const int threads = p.num_threads > 0 ? p.num_threads : omp_get_max_threads();

#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::int64_t tile = 0; tile < tiles; ++tile) {
    const std::int64_t row0 = tile * W;
    const int lanes = static_cast<int>(std::min<std::int64_t>(W, p.batch - row0));
    V theta[N] = {}, grad[N] = {}, e[N];
    if (read_params) load_tile<Ops, N>(params, p.params_stride, row0, lanes, theta);
    if (read_grads) load_tile<Ops, N>(grads, p.grads_stride, row0, lanes, grad);
    if (prog.product_only && state == nullptr) {
      product_expectations<Ops, N>(prog, theta, grad, e);
    } else {
      State<Ops, N> st;
      run_state<Ops, N>(prog, theta, grad, st);
      state_expectations<Ops, N>(prog, st, e);
      if (state != nullptr) store_state<Ops, N>(st, row0, lanes, state);
    }
    store_tile<Ops, N>(e, row0, lanes, out);
  }
}

template <class T>
void simulate_typed(const Program& prog, const SimulateParams& p) {
  switch (prog.n_qubits) {
    case 1: return simulate_n<T, 1>(prog, p);
    case 2: return simulate_n<T, 2>(prog, p);
    case 3: return simulate_n<T, 3>(prog, p);
    case 4: return simulate_n<T, 4>(prog, p);
    case 5: return simulate_n<T, 5>(prog, p);
    case 6: return simulate_n<T, 6>(prog, p);
    case 7: return simulate_n<T, 7>(prog, p);
    case 8: return simulate_n<T, 8>(prog, p);
    case 9: return simulate_n<T, 9>(prog, p);
    case 10: return simulate_n<T, 10>(prog, p);
    default: return;  // compile() guarantees 1..kMaxQubits
  }
}

}  // namespace

void simulate(const Program& prog, const SimulateParams& p) {
  if (p.dtype == DType::kFloat64) {
    simulate_typed<double>(prog, p);
  } else {
    simulate_typed<float>(prog, p);
  }
}

}  // namespace sp::cpu::SP_ISA
