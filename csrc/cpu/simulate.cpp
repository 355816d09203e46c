// Batched simulation on the CPU: OpenMP across tiles of circuits, SIMD lanes
// across the circuits of a tile. Compiled once per instruction set.
#include <cstdint>

#include "../statevector.h"
#include "isa.h"
#include "tiles.h"

namespace sp::cpu::SP_ISA {
namespace {

// Circuits below which a thread is not worth waking (a 4-qubit circuit takes tens of nanoseconds).
constexpr std::int64_t kCircuitsPerThread = 512;

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
void simulate_n(const SimulateParams& p) {
  using Ops = Lanes<T>;
  const Program& prog = *p.program;
  const BatchTiles<Ops, N> tiles(p);
  T* out = static_cast<T*>(p.out);
  T* state = static_cast<T*>(p.state);

  const int team = team_size(p, p.batch, kCircuitsPerThread);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
  for (std::int64_t t = 0; t < tiles.count; ++t) {
    const auto tile = tiles[t];
    typename Ops::V theta[N], grad[N], e[N];  // an input the program never reads stays unset
    tiles.load_inputs(tile, theta, grad);
    if (prog.product_only && state == nullptr) {
      product_expectations<Ops, N>(prog, theta, grad, e);
    } else {
      State<Ops, N> st;
      run_state<Ops, N>(prog, theta, grad, st);
      state_expectations<Ops, N>(prog, st, e);
      if (state != nullptr) store_state<Ops, N>(st, tile.row0, tile.lanes, state);
    }
    store_rows<Ops, N>(e, tile.row0, tile.lanes, out);
  }
}

}  // namespace

void simulate(const SimulateParams& p) {
  with_batch_types(p.dtype, p.program->n_qubits,
                   [&](auto t, auto n) { simulate_n<decltype(t), decltype(n)::value>(p); });
}

}  // namespace sp::cpu::SP_ISA
