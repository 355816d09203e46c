// Gate math and expectations: the one source of truth shared by every backend.
//
// Everything here is templated on a lane policy `Ops` that supplies the value
// type `Ops::V`, a broadcast `Ops::splat` and `Ops::sincos`. The CPU kernel
// instantiates it with SIMD vectors (one lane per circuit, structure of arrays);
// the CUDA kernel with plain scalars (one thread per circuit). The qubit count
// `N` is a template parameter, so the state is an array of compile-time size
// that lives in registers or on the stack for the whole circuit.
//
// Conventions are Qiskit's: qubit k is bit k of a basis-state index
// (little-endian), RX(t) = exp(-i t X / 2), RY(t) = exp(-i t Y / 2),
// RZ(t) = exp(-i t Z / 2).
#pragma once

#include <utility>

#include "circuit.h"
#include "inline.h"

namespace sp {
SP_INLINE int parity(unsigned bits) {
#if defined(__CUDA_ARCH__)
  return __popc(bits) & 1;
#else
  return __builtin_parity(bits);
#endif
}
}  // namespace sp

namespace sp {

template <class V>
struct Complex {
  V re;
  V im;
};

// a b, and a x + b y: the complex arithmetic of every backend's gates, written once
// so that the CPU's SIMD lanes and the GPU's registers round alike.
template <class V>
SP_INLINE Complex<V> cmul(const Complex<V>& a, const Complex<V>& b) {
  return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}

template <class V>
SP_INLINE Complex<V> cmul_add(const Complex<V>& a, const Complex<V>& x, const Complex<V>& b, const Complex<V>& y) {
  return {a.re * x.re - a.im * x.im + b.re * y.re - b.im * y.im, a.re * x.im + a.im * x.re + b.re * y.im + b.im * y.re};
}

// c ? a : b by value. A conditional on two lvalues of a class type (the CUDA
// kernels' several-circuit lanes) picks an address, which sends the arrays it
// reads to local memory; lanes.cuh overloads this to pick element by element.
template <class V>
SP_INLINE V pick(bool c, const V& a, const V& b) {
  return c ? a : b;
}

// --- angles and one-qubit gates -------------------------------------------

// The input an angle reads: theta[index] or grad[index], index known only at run time. On the GPU a
// register array read at a run-time index (or through a pointer chosen at run time) moves to local
// memory, and so does a loop over the elements that compares each index, which the compiler turns
// back into an indexed load: so the choice is straight-line code over compile-time indices. The
// CPU simply indexes its stack arrays.
#if defined(__CUDA_ARCH__)
template <class V, int... Ks>
SP_INLINE V select_input(const V* theta, const V* grad, bool from_params, int index,
                         std::integer_sequence<int, Ks...>) {
  V input = pick(from_params, theta[0], grad[0]);
  ((input = pick(index == Ks, pick(from_params, theta[Ks], grad[Ks]), input)), ...);
  return input;
}
#endif

template <class Ops, int N>
SP_INLINE typename Ops::V angle_input(const Angle& a, const typename Ops::V* theta, const typename Ops::V* grad) {
#if defined(__CUDA_ARCH__)
  return select_input(theta, grad, a.source == kParam, a.index, std::make_integer_sequence<int, N>{});
#else
  return (a.source == kParam ? theta : grad)[a.index];
#endif
}

// angle = scale * input[index] + offset, read from this lane's N inputs.
template <class Ops, int N>
SP_INLINE typename Ops::V angle_value(const Angle& a, const typename Ops::V* theta,
                                      const typename Ops::V* grad) {
  using S = typename Ops::S;
  const auto offset = Ops::splat(static_cast<S>(a.offset));
  if (a.source == kConst) return offset;
  const auto input = angle_input<Ops, N>(a, theta, grad);
  return input * static_cast<S>(a.scale) + offset;
}

// Applies the rotation of `kind` whose half angle has sine s and cosine c to the
// 2-vector (a0, a1) of amplitudes of its qubit; (-s, c) applies its inverse.
template <class V>
SP_INLINE void rotate(int kind, const V& s, const V& c, Complex<V>& a0, Complex<V>& a1) {
  if (kind == kRX) {  // [[c, -is], [-is, c]]
    const Complex<V> b0{c * a0.re + s * a1.im, c * a0.im - s * a1.re};
    const Complex<V> b1{s * a0.im + c * a1.re, c * a1.im - s * a0.re};
    a0 = b0;
    a1 = b1;
  } else if (kind == kRY) {  // [[c, -s], [s, c]]
    const Complex<V> b0{c * a0.re - s * a1.re, c * a0.im - s * a1.im};
    const Complex<V> b1{s * a0.re + c * a1.re, s * a0.im + c * a1.im};
    a0 = b0;
    a1 = b1;
  } else {  // kRZ: diag(c - is, c + is)
    const Complex<V> b0{c * a0.re + s * a0.im, c * a0.im - s * a0.re};
    const Complex<V> b1{c * a1.re - s * a1.im, c * a1.im + s * a1.re};
    a0 = b0;
    a1 = b1;
  }
}

// The sine and cosine of half a rotation gate's angle.
template <class Ops, int N>
SP_INLINE void half_angle(const Gate& g, const typename Ops::V* theta, const typename Ops::V* grad,
                          typename Ops::V& s, typename Ops::V& c) {
  using S = typename Ops::S;
  Ops::sincos(angle_value<Ops, N>(g.angle, theta, grad) * static_cast<S>(0.5), s, c);
}

// Applies H or X, which are their own inverses, to (a0, a1).
template <class V, class S>
SP_INLINE void apply_clifford(int kind, Complex<V>& a0, Complex<V>& a1) {
  if (kind == kH) {
    const S r = static_cast<S>(0.70710678118654752440);
    const Complex<V> b0{(a0.re + a1.re) * r, (a0.im + a1.im) * r};
    const Complex<V> b1{(a0.re - a1.re) * r, (a0.im - a1.im) * r};
    a0 = b0;
    a1 = b1;
  } else {  // kX
    const Complex<V> t = a0;
    a0 = a1;
    a1 = t;
  }
}

// Applies one gate to the 2-vector (a0, a1) of amplitudes of its qubit.
template <class Ops, int N>
SP_INLINE void apply_gate(const Gate& g, const typename Ops::V* theta, const typename Ops::V* grad,
                          Complex<typename Ops::V>& a0, Complex<typename Ops::V>& a1) {
  using V = typename Ops::V;
  if (!is_rotation(g.kind)) {
    apply_clifford<V, typename Ops::S>(g.kind, a0, a1);
    return;
  }
  V s, c;
  half_angle<Ops, N>(g, theta, grad, s, c);
  rotate(g.kind, s, c, a0, a1);
}

// Qubit q's state before its first two-qubit gate: its folded initial state,
// then its remaining prefix gates.
template <class Ops, int N>
SP_INLINE void prepare_qubit(const Program& prog, int q, const typename Ops::V* theta, const typename Ops::V* grad,
                             Complex<typename Ops::V>& a0, Complex<typename Ops::V>& a1) {
  using S = typename Ops::S;
  const double* init = prog.initial[q];
  a0 = {Ops::splat(static_cast<S>(init[0])), Ops::splat(static_cast<S>(init[1]))};
  a1 = {Ops::splat(static_cast<S>(init[2])), Ops::splat(static_cast<S>(init[3]))};
  for (int i = prog.prefix_begin[q]; i < prog.prefix_begin[q + 1]; ++i)
    apply_gate<Ops, N>(prog.gates[i], theta, grad, a0, a1);
}

// The same for a qubit in prog.real_prefix, on real amplitudes (H, X and RY only).
template <class Ops, int N>
SP_INLINE void prepare_real_qubit(const Program& prog, int q, const typename Ops::V* theta,
                                  const typename Ops::V* grad, typename Ops::V& a0, typename Ops::V& a1) {
  using V = typename Ops::V;
  using S = typename Ops::S;
  a0 = Ops::splat(static_cast<S>(prog.initial[q][0]));
  a1 = Ops::splat(static_cast<S>(prog.initial[q][2]));
  for (int i = prog.prefix_begin[q]; i < prog.prefix_begin[q + 1]; ++i) {
    const Gate& g = prog.gates[i];
    if (g.kind == kH) {
      const S r = static_cast<S>(0.70710678118654752440);
      const V b0 = (a0 + a1) * r;
      a1 = (a0 - a1) * r;
      a0 = b0;
    } else if (g.kind == kX) {
      const V t = a0;
      a0 = a1;
      a1 = t;
    } else {  // kRY
      V s, c;
      Ops::sincos(angle_value<Ops, N>(g.angle, theta, grad) * static_cast<S>(0.5), s, c);
      const V b0 = c * a0 - s * a1;
      a1 = s * a0 + c * a1;
      a0 = b0;
    }
  }
}

// <a|P|a> for a one-qubit state and P in {X (x), Z (z), Y (x and z)}.
template <class V>
SP_INLINE V pauli_expectation(bool x, bool z, const Complex<V>& a0, const Complex<V>& a1) {
  if (x && z) {
    const V im = a0.re * a1.im - a0.im * a1.re;  // Im(conj(a0) a1)
    return im + im;
  }
  if (x) {
    const V re = a0.re * a1.re + a0.im * a1.im;  // Re(conj(a0) a1)
    return re + re;
  }
  return (a0.re * a0.re + a0.im * a0.im) - (a1.re * a1.re + a1.im * a1.im);
}

// --- product-state programs ------------------------------------------------

// When compilation left no entangling step, each output is a signed product of
// one-qubit expectations: O(n) work per circuit instead of O(n 2^n).
template <class Ops, int N>
SP_INLINE void product_expectations(const Program& prog, const typename Ops::V* theta,
                                    const typename Ops::V* grad, typename Ops::V* out) {
  using V = typename Ops::V;
  V factor[N][3];  // factor[q][P] = <P> on qubit q, P = 0 X, 1 Y, 2 Z; set where needed
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int q = 0; q < N; ++q) {
    const unsigned needed = prog.paulis_needed[q];
    if (!needed) continue;
    if (prog.real_prefix >> q & 1u) {
      V a0, a1;
      prepare_real_qubit<Ops, N>(prog, q, theta, grad, a0, a1);
      const V x = a0 * a1;
      factor[q][0] = x + x;
      factor[q][1] = Ops::splat(0);
      factor[q][2] = a0 * a0 - a1 * a1;
      continue;
    }
    Complex<V> a0, a1;
    prepare_qubit<Ops, N>(prog, q, theta, grad, a0, a1);
    if (needed & 1u) factor[q][0] = pauli_expectation(true, false, a0, a1);
    if (needed & 2u) factor[q][1] = pauli_expectation(true, true, a0, a1);
    if (needed & 4u) factor[q][2] = pauli_expectation(false, true, a0, a1);
  }
#if defined(__CUDA_ARCH__)
  // Compile-time qubit indices keep the factors in registers.
#pragma unroll
  for (int k = 0; k < N; ++k) {
    const PauliString& p = prog.observables[k];
    V e = Ops::splat(p.negative ? -1 : 1);
#pragma unroll
    for (int q = 0; q < N; ++q) {
      const bool x = p.x_mask >> q & 1u, z = p.z_mask >> q & 1u;
      if (x || z) e = e * pick(x && z, factor[q][1], pick(x, factor[q][0], factor[q][2]));
    }
    out[k] = e;
  }
#else
  // The CPU walks each output's precomputed factor list instead of all qubits.
  for (int k = 0; k < N; ++k) {
    V e = Ops::splat(prog.observables[k].negative ? -1 : 1);
    for (int f = 0; f < prog.n_factors[k]; ++f) {
      const int code = prog.factors[k][f];
      e = e * factor[code / 3][code % 3];
    }
    out[k] = e;
  }
#endif
}

// --- full statevector --------------------------------------------------------

template <class Ops, int N>
struct State {
  static constexpr int kDim = 1 << N;
  typename Ops::V re[kDim];
  typename Ops::V im[kDim];
};

// The tensor product of the prefix states: amplitude i = prod_q a_q[bit q of i].
template <class Ops, int N>
SP_INLINE void prepare_product(const Program& prog, const typename Ops::V* theta,
                               const typename Ops::V* grad, State<Ops, N>& st) {
  using V = typename Ops::V;
  st.re[0] = Ops::splat(1);
  st.im[0] = Ops::splat(0);
  for (int q = 0; q < N; ++q) {
    Complex<V> a0, a1;
    prepare_qubit<Ops, N>(prog, q, theta, grad, a0, a1);
    const int half = 1 << q;
    for (int i = 0; i < half; ++i) {  // descending order would also work; new slots are above `half`
      const Complex<V> amp{st.re[i], st.im[i]};
      const Complex<V> high = cmul(amp, a1), low = cmul(amp, a0);
      st.re[i + half] = high.re;
      st.im[i + half] = high.im;
      st.re[i] = low.re;
      st.im[i] = low.im;
    }
  }
}

// Applies the 2x2 unitary u (row-major) to qubit q of the state.
template <class Ops, int N>
SP_INLINE void apply_unitary(State<Ops, N>& st, int q, const Complex<typename Ops::V> (&u)[4]) {
  using V = typename Ops::V;
  const int stride = 1 << q;
  for (int base = 0; base < State<Ops, N>::kDim; base += 2 * stride) {
    for (int i0 = base; i0 < base + stride; ++i0) {
      const int i1 = i0 + stride;
      const Complex<V> a0{st.re[i0], st.im[i0]}, a1{st.re[i1], st.im[i1]};
      const Complex<V> b0 = cmul_add(u[0], a0, u[1], a1), b1 = cmul_add(u[2], a0, u[3], a1);
      st.re[i0] = b0.re;
      st.im[i0] = b0.im;
      st.re[i1] = b1.re;
      st.im[i1] = b1.im;
    }
  }
}

template <class Ops, int N>
SP_INLINE void apply_cx(State<Ops, N>& st, int control, int target) {
  const int c = 1 << control, t = 1 << target;
  for (int i = 0; i < State<Ops, N>::kDim; ++i) {
    if ((i & c) && !(i & t)) {
      const auto r = st.re[i], m = st.im[i];
      st.re[i] = st.re[i | t];
      st.im[i] = st.im[i | t];
      st.re[i | t] = r;
      st.im[i | t] = m;
    }
  }
}

template <class Ops, int N>
SP_INLINE void apply_cz(State<Ops, N>& st, int a, int b) {
  const int both = (1 << a) | (1 << b);
  for (int i = 0; i < State<Ops, N>::kDim; ++i) {
    if ((i & both) == both) {
      st.re[i] = -st.re[i];
      st.im[i] = -st.im[i];
    }
  }
}

// The 2x2 unitary (row-major) of a kFused block: the product of its gates.
template <class Ops, int N>
SP_INLINE void fused_unitary(const Program& prog, const Block& blk, const typename Ops::V* theta,
                             const typename Ops::V* grad, Complex<typename Ops::V> (&u)[4]) {
  using V = typename Ops::V;
  // The columns are the images of |0> and |1>.
  Complex<V> u00{Ops::splat(1), Ops::splat(0)}, u10{Ops::splat(0), Ops::splat(0)};
  Complex<V> u01{Ops::splat(0), Ops::splat(0)}, u11{Ops::splat(1), Ops::splat(0)};
  for (int i = blk.first; i < blk.first + blk.count; ++i) {
    apply_gate<Ops, N>(prog.gates[i], theta, grad, u00, u10);
    apply_gate<Ops, N>(prog.gates[i], theta, grad, u01, u11);
  }
  u[0] = u00, u[1] = u01, u[2] = u10, u[3] = u11;
}

// Runs the entangled part of the program (its blocks) on a prepared state.
template <class Ops, int N>
SP_INLINE void apply_blocks(const Program& prog, const typename Ops::V* theta, const typename Ops::V* grad,
                            State<Ops, N>& st) {
  using V = typename Ops::V;
  for (int b = 0; b < prog.n_blocks; ++b) {
    const Block& blk = prog.blocks[b];
    if (blk.kind == kBlockCX) {
      apply_cx<Ops, N>(st, blk.q0, blk.q1);
    } else if (blk.kind == kBlockCZ) {
      apply_cz<Ops, N>(st, blk.q0, blk.q1);
    } else {
      Complex<V> u[4];
      fused_unitary<Ops, N>(prog, blk, theta, grad, u);
      apply_unitary<Ops, N>(st, blk.q0, u);
    }
  }
}

// <psi|P|psi> for a signed Pauli string P = (-1)^negative i^{nY} X^x Z^z, using
// P|i> = i^{nY} (-1)^{popcount(i & z)} |i ^ x>.
template <class Ops, int N>
SP_INLINE typename Ops::V string_expectation(const State<Ops, N>& st, const PauliString& p) {
  using V = typename Ops::V;
  int n_y = 0;
  for (int q = 0; q < N; ++q) n_y += (p.x_mask >> q & p.z_mask >> q) & 1;
  V acc = Ops::splat(0);
  for (int i = 0; i < State<Ops, N>::kDim; ++i) {
    const int j = i ^ p.x_mask;
    // conj(psi[j]) * psi[i], then multiplied by i^{nY}: keep the real part.
    const V tr = st.re[j] * st.re[i] + st.im[j] * st.im[i];
    const V ti = st.re[j] * st.im[i] - st.im[j] * st.re[i];
    V term;
    switch (n_y & 3) {
      case 0: term = tr; break;
      case 1: term = -ti; break;
      case 2: term = -tr; break;
      default: term = ti; break;
    }
    acc = parity(static_cast<unsigned>(i & p.z_mask)) ? acc - term : acc + term;
  }
  return p.negative ? -acc : acc;
}

// The full statevector of a circuit (for return_state and for programs with
// entangling steps).
template <class Ops, int N>
SP_INLINE void run_state(const Program& prog, const typename Ops::V* theta, const typename Ops::V* grad,
                         State<Ops, N>& st) {
  prepare_product<Ops, N>(prog, theta, grad, st);
  apply_blocks<Ops, N>(prog, theta, grad, st);
}

template <class Ops, int N>
SP_INLINE void state_expectations(const Program& prog, const State<Ops, N>& st, typename Ops::V* out) {
  for (int k = 0; k < N; ++k) out[k] = string_expectation<Ops, N>(st, prog.observables[k]);
}

}  // namespace sp
