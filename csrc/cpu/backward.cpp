// Gradients of batched simulation on the CPU (the adjoint method of adjoint.h):
// OpenMP across tiles of circuits, SIMD lanes across the circuits of a tile.
// Compiled once per instruction set.
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "../adjoint.h"
#include "isa.h"
#include "tiles.h"

namespace sp::cpu::SP_ISA {
namespace {

template <class T, int N>
void backward_n(const Program& prog, const BackwardParams& p) {
  using Ops = Lanes<T>;
  using V = typename Ops::V;
  constexpr int W = Ops::kWidth;
  const T* params = static_cast<const T*>(p.params);
  const T* grads = static_cast<const T*>(p.grads);
  const T* weights = static_cast<const T*>(p.weights);
  T* d_params = static_cast<T*>(p.d_params);
  T* d_grads = static_cast<T*>(p.d_grads);
  const std::int64_t weight_stride[2] = {N, 1};
  const std::int64_t tiles = (p.batch + W - 1) / W;
  const int threads = p.num_threads > 0 ? p.num_threads : omp_get_max_threads();

#pragma omp parallel num_threads(threads)
  {
    // Two states per thread, reused across its tiles.
    State<Ops, N> psi, lambda;
#pragma omp for schedule(static)
    for (std::int64_t tile = 0; tile < tiles; ++tile) {
      const std::int64_t row0 = tile * W;
      const int lanes = static_cast<int>(std::min<std::int64_t>(W, p.batch - row0));
      V theta[N], grad[N], w[N], d_theta[N], d_grad[N];
      for (int k = 0; k < N; ++k) theta[k] = grad[k] = Ops::splat(0);
      if (prog.uses_params) load_rows<Ops, N>(params, p.params_stride, row0, lanes, theta);
      if (prog.uses_grads) load_rows<Ops, N>(grads, p.grads_stride, row0, lanes, grad);
      load_rows<Ops, N>(weights, weight_stride, row0, lanes, w);
      adjoint_gradients<Ops, N>(prog, theta, grad, w, psi, lambda, d_theta, d_grad);
      if (d_params != nullptr) store_rows<Ops, N>(d_theta, row0, lanes, d_params);
      if (d_grads != nullptr) store_rows<Ops, N>(d_grad, row0, lanes, d_grads);
    }
  }
}

template <class T>
void backward_typed(const Program& prog, const BackwardParams& p) {
  with_qubit_count(prog.n_qubits, [&](auto n) { backward_n<T, decltype(n)::value>(prog, p); });
}

}  // namespace

void backward(const Program& prog, const BackwardParams& p) {
  if (p.dtype == DType::kFloat64) {
    backward_typed<double>(prog, p);
  } else {
    backward_typed<float>(prog, p);
  }
}

}  // namespace sp::cpu::SP_ISA
