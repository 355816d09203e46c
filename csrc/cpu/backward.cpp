// Gradients of batched simulation on the CPU (the adjoint method of adjoint.h, on
// each qubit's 2-vector for product programs, else on the statevector):
// OpenMP across tiles of circuits, SIMD lanes across the circuits of a tile.
// Compiled once per instruction set.
#include <cstdint>

#include "../adjoint.h"
#include "isa.h"
#include "tiles.h"

namespace sp::cpu::SP_ISA {
namespace {

// Circuits below which a thread is not worth waking (the adjoint pass costs a few forward passes).
constexpr std::int64_t kCircuitsPerThread = 128;

template <class T, int N>
void backward_n(const BackwardParams& p) {
  using Ops = Lanes<T>;
  const BatchTiles<Ops, N> tiles(p);
  const T* weights = static_cast<const T*>(p.weights);
  T* d_params = static_cast<T*>(p.d_params);
  T* d_grads = static_cast<T*>(p.d_grads);
  const std::int64_t weight_stride[2] = {N, 1};
  const Program& prog = *p.program;
  const bool product = prog.product_only;

  const int team = team_size(p, p.batch, kCircuitsPerThread);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    // Two states per thread, reused across its tiles (unused by product programs).
    State<Ops, N> psi, lambda;
#pragma omp for schedule(static)
    for (std::int64_t t = 0; t < tiles.count; ++t) {
      const auto tile = tiles[t];
      typename Ops::V theta[N], grad[N], w[N], d_theta[N], d_grad[N];
      for (int k = 0; k < N; ++k) theta[k] = grad[k] = Ops::splat(0);
      tiles.load_inputs(tile, theta, grad);
      load_rows<Ops, N>(weights, weight_stride, tile.row0, tile.lanes, w);
      if (product)
        product_gradients<Ops, N>(prog, theta, grad, w, d_theta, d_grad);
      else
        adjoint_gradients<Ops, N>(prog, theta, grad, w, psi, lambda, d_theta, d_grad);
      if (d_params != nullptr) store_rows<Ops, N>(d_theta, tile.row0, tile.lanes, d_params);
      if (d_grads != nullptr) store_rows<Ops, N>(d_grad, tile.row0, tile.lanes, d_grads);
    }
  }
}

}  // namespace

void backward(const BackwardParams& p) {
  with_batch_types(p.dtype, p.program->n_qubits,
                   [&](auto t, auto n) { backward_n<decltype(t), decltype(n)::value>(p); });
}

}  // namespace sp::cpu::SP_ISA
