// Gradients of a circuit's expectations with respect to its inputs, by the
// adjoint method, on the same lanes as statevector.h (shared by every backend):
// on the full statevector, or on each qubit's 2-vector for product_only programs.
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

// Adds value to the gradient of the input that angle a reads (a.source is kParam
// or kGrad). On the GPU the run-time array and index keep d_theta and d_grad in
// local memory, where they stay in L1. Registers, with every slot of both adding
// a selected value, measured no faster on the H200 at 4 qubits (the product
// backward of attention(4) at 1.1e10/s either way) and 1.7x slower at 8: 153
// registers a thread instead of 128 left one block per SM, not two.
template <class Ops, int N>
SP_INLINE void add_gradient(const Angle& a, const typename Ops::V& value, typename Ops::V* d_theta,
                            typename Ops::V* d_grad) {
  typename Ops::V* target = a.source == kParam ? d_theta : d_grad;
#if defined(__CUDA_ARCH__)
#pragma unroll
  for (int k = 0; k < N; ++k)
    if (k == a.index) target[k] = target[k] + value;
#else
  target[a.index] = target[a.index] + value;
#endif
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
    add_gradient<Ops, N>(g.angle, da, d_theta, d_grad);
  }
  Complex<typename Ops::V> u[4];
  gate_matrix<Ops, N>(g, theta, grad, true, u);
  apply_unitary<Ops, N>(psi, q, u);
  apply_unitary<Ops, N>(lambda, q, u);
}

// --- product-state programs --------------------------------------------------
//
// A product_only program measures e_k = s_k prod_{q in k} f_q(P_kq), with
// f_q(P) = <a_q|P|a_q> for qubit q's one-qubit state a_q (statevector.h). With the
// other qubits held fixed, L = sum_k w_k e_k is, as a function of qubit q's
// gates, <a_q|M_q|a_q> plus a constant, for the one-qubit observable
//     M_q = sum_P c_qP P,   c_qP = sum_{k: P_kq = P} w_k s_k prod_{q' in k, q' != q} f_q'(P_kq'),
// (a Pauli string names each qubit once). The sweep above, run on each qubit's
// 2-vectors with lambda = M_q a_q, then gives every prefix rotation's gradient:
// O(gates) per circuit, as the forward, where the statevector sweep is O(gates 2^n).

// Im <lambda| P |psi> on one qubit, for the axis P of a rotation.
template <class V>
SP_INLINE V qubit_derivative(int kind, const Complex<V>& l0, const Complex<V>& l1, const Complex<V>& p0,
                             const Complex<V>& p1) {
  // Im(conj(l) * x) = l.re * x.im - l.im * x.re for (P psi) = (x0, x1).
  if (kind == kRX) return (l0.re * p1.im - l0.im * p1.re) + (l1.re * p0.im - l1.im * p0.re);  // (p1, p0)
  if (kind == kRY) return (l1.re * p0.re + l1.im * p0.im) - (l0.re * p1.re + l0.im * p1.im);  // (-i p1, i p0)
  return (l0.re * p0.im - l0.im * p0.re) - (l1.re * p1.im - l1.im * p1.re);                   // (p0, -p1)
}

// The sweep over qubit q's prefix gates, last to first, for psi = (p0, p1) its
// final state and lambda = (l0, l1) = M_q psi: each parameterised rotation adds
// its gradient, then is undone on both (not needed before the first gate).
template <class Ops, int N>
SP_INLINE void qubit_sweep(const Program& prog, int q, const typename Ops::V* theta, const typename Ops::V* grad,
                           Complex<typename Ops::V> p0, Complex<typename Ops::V> p1, Complex<typename Ops::V> l0,
                           Complex<typename Ops::V> l1, typename Ops::V* d_theta, typename Ops::V* d_grad) {
  using V = typename Ops::V;
  using S = typename Ops::S;
  const int first = prog.prefix_begin[q];
  for (int i = prog.prefix_begin[q + 1] - 1; i >= first; --i) {
    const Gate& g = prog.gates[i];
    if (!is_rotation(g.kind)) {
      if (i > first) {
        apply_clifford<V, S>(g.kind, p0, p1);
        apply_clifford<V, S>(g.kind, l0, l1);
      }
      continue;
    }
    if (g.angle.source != kConst) {
      const V da = qubit_derivative(g.kind, l0, l1, p0, p1) * static_cast<S>(g.angle.scale);
      add_gradient<Ops, N>(g.angle, da, d_theta, d_grad);
    }
    if (i > first) {
      V s, c;
      half_angle<Ops, N>(g, theta, grad, s, c);
      const V minus_s = -s;
      rotate(g.kind, minus_s, c, p0, p1);
      rotate(g.kind, minus_s, c, l0, l1);
    }
  }
}

// The same for a qubit in prog.real_prefix (H, X and RY on real amplitudes). Its
// <Y> is 0 whatever the angles, so M_q's Y part contributes nothing.
template <class Ops, int N>
SP_INLINE void real_qubit_sweep(const Program& prog, int q, const typename Ops::V* theta,
                                const typename Ops::V* grad, typename Ops::V p0, typename Ops::V p1,
                                typename Ops::V l0, typename Ops::V l1, typename Ops::V* d_theta,
                                typename Ops::V* d_grad) {
  using V = typename Ops::V;
  using S = typename Ops::S;
  const int first = prog.prefix_begin[q];
  for (int i = prog.prefix_begin[q + 1] - 1; i >= first; --i) {
    const Gate& g = prog.gates[i];
    if (g.kind == kRY && g.angle.source != kConst) {
      const V da = (l1 * p0 - l0 * p1) * static_cast<S>(g.angle.scale);  // Im <l| Y |p>, both real
      add_gradient<Ops, N>(g.angle, da, d_theta, d_grad);
    }
    if (i == first) break;
    if (g.kind == kH) {
      const S r = static_cast<S>(0.70710678118654752440);
      const V q0 = (p0 + p1) * r, m0 = (l0 + l1) * r;
      p1 = (p0 - p1) * r;
      l1 = (l0 - l1) * r;
      p0 = q0;
      l0 = m0;
    } else if (g.kind == kX) {
      const V t = p0, u = l0;
      p0 = p1;
      l0 = l1;
      p1 = t;
      l1 = u;
    } else {  // RY(-a) = [[c, s], [-s, c]]
      V s, c;
      half_angle<Ops, N>(g, theta, grad, s, c);
      const V q0 = c * p0 + s * p1, m0 = c * l0 + s * l1;
      p1 = c * p1 - s * p0;
      l1 = c * l1 - s * l0;
      p0 = q0;
      l0 = m0;
    }
  }
}

// d_theta and d_grad of L = sum_k weights_k e_k for a product_only program.
template <class Ops, int N>
SP_INLINE void product_gradients(const Program& prog, const typename Ops::V* theta, const typename Ops::V* grad,
                                 const typename Ops::V* weights, typename Ops::V* d_theta,
                                 typename Ops::V* d_grad) {
  using V = typename Ops::V;
  const V zero = Ops::splat(0);
  V factor[N][3];  // <X>, <Y>, <Z> of each qubit's final state, where needed
  V coef[N][3];    // M_q's coefficients
  Complex<V> a0[N], a1[N];
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int q = 0; q < N; ++q) {
    d_theta[q] = d_grad[q] = zero;
    coef[q][0] = coef[q][1] = coef[q][2] = zero;
    const unsigned needed = prog.paulis_needed[q];
    if (!needed) continue;
    if (prog.real_prefix >> q & 1u) {
      V r0, r1;
      prepare_real_qubit<Ops, N>(prog, q, theta, grad, r0, r1);
      a0[q] = {r0, zero};
      a1[q] = {r1, zero};
      const V x = r0 * r1;
      factor[q][0] = x + x;
      factor[q][1] = zero;
      factor[q][2] = r0 * r0 - r1 * r1;
      continue;
    }
    prepare_qubit<Ops, N>(prog, q, theta, grad, a0[q], a1[q]);
    if (needed & 1u) factor[q][0] = pauli_expectation(true, false, a0[q], a1[q]);
    if (needed & 2u) factor[q][1] = pauli_expectation(true, true, a0[q], a1[q]);
    if (needed & 4u) factor[q][2] = pauli_expectation(false, true, a0[q], a1[q]);
  }
#if defined(__CUDA_ARCH__)
  // Compile-time qubit indices keep factors and coefficients in registers.
#pragma unroll
  for (int k = 0; k < N; ++k) {
    const PauliString& p = prog.observables[k];
    const V w = p.negative ? -weights[k] : weights[k];
#pragma unroll
    for (int q = 0; q < N; ++q) {
      const bool x = p.x_mask >> q & 1u, z = p.z_mask >> q & 1u;
      if (!(x || z)) continue;
      V rest = w;
#pragma unroll
      for (int r = 0; r < N; ++r) {
        const bool xr = p.x_mask >> r & 1u, zr = p.z_mask >> r & 1u;
        if (r != q && (xr || zr)) rest = rest * pick(xr && zr, factor[r][1], pick(xr, factor[r][0], factor[r][2]));
      }
      if (x && z) {
        coef[q][1] = coef[q][1] + rest;
      } else if (x) {
        coef[q][0] = coef[q][0] + rest;
      } else {
        coef[q][2] = coef[q][2] + rest;
      }
    }
  }
#else
  for (int k = 0; k < N; ++k) {
    const V w = prog.observables[k].negative ? -weights[k] : weights[k];
    const int n_factors = prog.n_factors[k];
    for (int f = 0; f < n_factors; ++f) {
      V rest = w;
      for (int r = 0; r < n_factors; ++r) {
        const int code = prog.factors[k][r];
        if (r != f) rest = rest * factor[code / 3][code % 3];
      }
      const int code = prog.factors[k][f];
      coef[code / 3][code % 3] = coef[code / 3][code % 3] + rest;
    }
  }
#endif
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int q = 0; q < N; ++q) {
    if (!prog.paulis_needed[q]) continue;
    const V cx = coef[q][0], cy = coef[q][1], cz = coef[q][2];
    if (prog.real_prefix >> q & 1u) {
      const V p0 = a0[q].re, p1 = a1[q].re;
      real_qubit_sweep<Ops, N>(prog, q, theta, grad, p0, p1, cx * p1 + cz * p0, cx * p0 - cz * p1, d_theta,
                               d_grad);
      continue;
    }
    // lambda = (cx X + cy Y + cz Z) psi, with X psi = (p1, p0), Y psi = (-i p1, i p0), Z psi = (p0, -p1).
    const Complex<V> p0 = a0[q], p1 = a1[q];
    const Complex<V> l0{cx * p1.re + cy * p1.im + cz * p0.re, cx * p1.im - cy * p1.re + cz * p0.im};
    const Complex<V> l1{cx * p0.re - cy * p0.im - cz * p1.re, cx * p0.im + cy * p0.re - cz * p1.im};
    qubit_sweep<Ops, N>(prog, q, theta, grad, p0, p1, l0, l1, d_theta, d_grad);
  }
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
