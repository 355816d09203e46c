// Batched simulation on the CPU: OpenMP across tiles of circuits, SIMD lanes
// across the circuits of a tile. Compiled once per instruction set.
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "../statevector.h"
#include "isa.h"
#include "tiles.h"

namespace sp::cpu::SP_ISA {
namespace {

template <class Ops, int N>
inline void store_state(const State<Ops, N>& st, std::int64_t row0, int lanes, typename Ops::S* dst) {
  constexpr std::int64_t kDim = State<Ops, N>::kDim;
  alignas(64) typename Ops::S re[Ops::kWidth], im[Ops::kWidth];
  for (int i = 0; i < kDim; ++i) {
    Ops::store(re, st.re[i]);
    Ops::store(im, st.im[i]);
    for (int l = 0; l < lanes; ++l) {
      typename Ops::S* amp = dst + 2 * ((row0 + l) * kDim + i);
      amp[0] = re[l];
      amp[1] = im[l];
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
    V theta[N], grad[N], e[N];  // an input the program never reads stays unset
    if (read_params) load_rows<Ops, N>(params, p.params_stride, row0, lanes, theta);
    if (read_grads) load_rows<Ops, N>(grads, p.grads_stride, row0, lanes, grad);
    if (prog.product_only && state == nullptr) {
      product_expectations<Ops, N>(prog, theta, grad, e);
    } else {
      State<Ops, N> st;
      run_state<Ops, N>(prog, theta, grad, st);
      state_expectations<Ops, N>(prog, st, e);
      if (state != nullptr) store_state<Ops, N>(st, row0, lanes, state);
    }
    store_rows<Ops, N>(e, row0, lanes, out);
  }
}

template <class T>
void simulate_typed(const Program& prog, const SimulateParams& p) {
  with_qubit_count(prog.n_qubits, [&](auto n) { simulate_n<T, decltype(n)::value>(prog, p); });
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
