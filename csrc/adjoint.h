// Gradients of a circuit's expectations with respect to its inputs, by the
// adjoint method, on the same lanes as statevector.h (shared by every backend).
//
// For weights w (the upstream gradient dL/de), the loss L = sum_k w_k <psi|O_k|psi>
// depends on a rotation R(a) = exp(-i a P / 2) through
//     dL/da = Im <lambda| P |psi>,   lambda = U_later^dagger (sum_k w_k O_k) psi_final,
// psi the state just after R. One backward sweep undoes the gates on psi and on
// lambda together: O(gates * 2^n) per circuit, no stored intermediate states.
// The sweep runs over the compiled program: gates moved into the observables are
// Cliffords without parameters, and dropped rotations commute with every
// observable, so their gradients are zero.
#pragma once

#include "statevector.h"

namespace sp {

// lambda = sum_k w_k P_k psi for the program's signed Pauli-string observables,
// using (P psi)_j = i^{nY} (-1)^{popcount((j ^ x) & z)} psi_{j ^ x}.
template <class Ops, int N>
SP_INLINE void weighted_observables(const Program& prog, const typename Ops::V* weights, const State<Ops, N>& psi,
                                    State<Ops, N>& lambda) {
  using V = typename Ops::V;
  for (int i = 0; i < State<Ops, N>::kDim; ++i) {
    lambda.re[i] = Ops::splat(0);
    lambda.im[i] = Ops::splat(0);
  }
  for (int k = 0; k < N; ++k) {
    const PauliString& p = prog.observables[k];
    int n_y = 0;
    for (int q = 0; q < N; ++q) n_y += (p.x_mask >> q & p.z_mask >> q) & 1;
    const V w = p.negative ? -weights[k] : weights[k];
    for (int j = 0; j < State<Ops, N>::kDim; ++j) {
      const int i = j ^ p.x_mask;
      const bool flip = parity(static_cast<unsigned>(i & p.z_mask));
      V re = psi.re[i], im = psi.im[i];
      switch (n_y & 3) {  // multiply by i^{nY}
        case 1: { const V t = re; re = -im; im = t; break; }
        case 2: re = -re; im = -im; break;
        case 3: { const V t = re; re = im; im = -t; break; }
        default: break;
      }
      if (flip) {
        re = -re;
        im = -im;
      }
      lambda.re[j] = lambda.re[j] + w * re;
      lambda.im[j] = lambda.im[j] + w * im;
    }
  }
}

// Im <lambda| P_q |psi> for the rotation axis P of a gate (X for RX, Y for RY, Z for RZ).
template <class Ops, int N>
SP_INLINE typename Ops::V rotation_derivative(int kind, int q, const State<Ops, N>& lambda, const State<Ops, N>& psi) {
  using V = typename Ops::V;
  const int bit = 1 << q;
  V acc = Ops::splat(0);
  for (int i = 0; i < State<Ops, N>::kDim; ++i) {
    // (P psi)_i, then Im(conj(lambda_i) * (P psi)_i) = lambda.re * im - lambda.im * re.
    V re, im;
    if (kind == kRX) {
      re = psi.re[i ^ bit];
      im = psi.im[i ^ bit];
    } else if (kind == kRY) {  // (Y psi)_i = -i psi_{i|b} for bit 0, +i psi_{i&~b} for bit 1
      const bool one = i & bit;
      re = one ? -psi.im[i ^ bit] : psi.im[i ^ bit];
      im = one ? psi.re[i ^ bit] : -psi.re[i ^ bit];
    } else {
      const bool one = i & bit;
      re = one ? -psi.re[i] : psi.re[i];
      im = one ? -psi.im[i] : psi.im[i];
    }
    acc = acc + (lambda.re[i] * im - lambda.im[i] * re);
  }
  return acc;
}

// The 2x2 matrix of one gate, or of its inverse (conjugate transpose), row-major.
template <class Ops, int N>
SP_INLINE void gate_matrix(const Gate& g, const typename Ops::V* theta, const typename Ops::V* grad, bool inverse,
                           Complex<typename Ops::V> (&u)[4]) {
  Complex<typename Ops::V> u00{Ops::splat(1), Ops::splat(0)}, u10{Ops::splat(0), Ops::splat(0)};
  Complex<typename Ops::V> u01{Ops::splat(0), Ops::splat(0)}, u11{Ops::splat(1), Ops::splat(0)};
  apply_gate<Ops, N>(g, theta, grad, u00, u10);
  apply_gate<Ops, N>(g, theta, grad, u01, u11);
  if (!inverse) {
    u[0] = u00, u[1] = u01, u[2] = u10, u[3] = u11;
  } else {
    u[0] = {u00.re, -u00.im}, u[1] = {u10.re, -u10.im}, u[2] = {u01.re, -u01.im}, u[3] = {u11.re, -u11.im};
  }
}

// Steps back over one gate on qubit q: adds its rotation's contribution to the
// input gradients, then undoes it on psi and lambda.
template <class Ops, int N>
SP_INLINE void undo_gate(const Gate& g, int q, const typename Ops::V* theta, const typename Ops::V* grad,
                         State<Ops, N>& psi, State<Ops, N>& lambda, typename Ops::V* d_theta,
                         typename Ops::V* d_grad) {
  using S = typename Ops::S;
  if (is_rotation(g.kind) && g.angle.source != kConst) {
    const auto da = rotation_derivative<Ops, N>(g.kind, q, lambda, psi) * static_cast<S>(g.angle.scale);
    auto* target = g.angle.source == kParam ? d_theta : d_grad;
    for (int k = 0; k < N; ++k)  // compile-time indices: the GPU keeps the gradients in registers
      if (k == g.angle.index) target[k] = target[k] + da;
  }
  Complex<typename Ops::V> u[4];
  gate_matrix<Ops, N>(g, theta, grad, true, u);
  apply_unitary<Ops, N>(psi, q, u);
  apply_unitary<Ops, N>(lambda, q, u);
}

// d_theta[k] = dL/dtheta_k and d_grad[k] = dL/dg_k for L = sum_k weights_k e_k.
// psi and lambda are scratch states supplied by the caller.
template <class Ops, int N>
SP_INLINE void adjoint_gradients(const Program& prog, const typename Ops::V* theta, const typename Ops::V* grad,
                                 const typename Ops::V* weights, State<Ops, N>& psi, State<Ops, N>& lambda,
                                 typename Ops::V* d_theta, typename Ops::V* d_grad) {
  for (int k = 0; k < N; ++k) {
    d_theta[k] = Ops::splat(0);
    d_grad[k] = Ops::splat(0);
  }
  run_state<Ops, N>(prog, theta, grad, psi);
  weighted_observables<Ops, N>(prog, weights, psi, lambda);
  for (int b = prog.n_blocks - 1; b >= 0; --b) {
    const Block& blk = prog.blocks[b];
    if (blk.kind == kBlockCX) {  // self-inverse and without parameters
      apply_cx<Ops, N>(psi, blk.q0, blk.q1);
      apply_cx<Ops, N>(lambda, blk.q0, blk.q1);
    } else if (blk.kind == kBlockCZ) {
      apply_cz<Ops, N>(psi, blk.q0, blk.q1);
      apply_cz<Ops, N>(lambda, blk.q0, blk.q1);
    } else {
      for (int i = blk.first + blk.count - 1; i >= blk.first; --i)
        undo_gate<Ops, N>(prog.gates[i], blk.q0, theta, grad, psi, lambda, d_theta, d_grad);
    }
  }
  // The prefix gates of different qubits commute: undo each qubit's in reverse.
  for (int q = 0; q < N; ++q)
    for (int i = prog.prefix_begin[q + 1] - 1; i >= prog.prefix_begin[q]; --i)
      undo_gate<Ops, N>(prog.gates[i], q, theta, grad, psi, lambda, d_theta, d_grad);
}

}  // namespace sp
