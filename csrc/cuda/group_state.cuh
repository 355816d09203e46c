// A circuit's statevector held in registers by a group of lanes of one warp.
//
// Amplitude i = j * kLanes + lane is register j of the group's lane `lane`: the low kLaneBits
// qubits are lane bits, the others register bits. A gate on a register bit is arithmetic on a
// lane's own registers; a gate on a lane bit trades amplitudes with the partner lane through a
// warp shuffle. Qubit indices come from the Program at run time, but a register array indexed at
// run time moves to local memory (the old per-thread kernel's 8e7 circuits/s at 8 qubits): so each
// gate is compiled once per qubit and a branch that is uniform over the warp picks the copy that
// runs (with_qubit).
//
// Width (GroupLayout): a float32 state of at most 5 qubits is one lane's alone, one circuit per
// thread and no shuffle; a larger one spreads over lanes of 2^4 amplitudes, the whole warp from 9
// qubits (2^5 amplitudes a lane at 10).
//
// The gate math is statevector.h's (prepare_qubit, fused_unitary); only where amplitudes live
// differs from the CPU kernel.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "../statevector.h"
#include "ops.cuh"

namespace sp::cuda {

template <class T, int N>
struct GroupLayout {
  // One lane holds a state of up to 2^5 float (2^4 double) amplitudes. A larger state spreads over
  // lanes of 2^4 amplitudes each until the warp is full (10 qubits take 2^5 per lane): 32 registers
  // of state instead of 64 double the warps an SM keeps (8 qubits: 128 registers a thread, not 192),
  // which pays for the extra shuffles.
  static constexpr int kSingleLaneBits = sizeof(T) == 4 ? 5 : 4;
  static constexpr int kRegBits = N <= kSingleLaneBits ? N : (N - 5 > 4 ? N - 5 : 4);
  static constexpr int kLaneBits = N - kRegBits;
  static constexpr int kLanes = 1 << kLaneBits;
  static constexpr int kRegs = 1 << kRegBits;
  static_assert(kLanes <= 32 && kRegBits <= 5, "a state spans at most one warp, 32 amplitudes per lane");
};

// Calls f(std::integral_constant<int, Q>{}) for the Q in [0, N) that equals q (q is the same on
// every lane of the warp, so the branch does not diverge).
template <class F, int... Qs>
__device__ __forceinline__ void with_qubit_impl(int q, F& f, std::integer_sequence<int, Qs...>) {
  ((q == Qs ? f(std::integral_constant<int, Qs>{}) : void()), ...);
}

template <int N, class F>
__device__ __forceinline__ void with_qubit(int q, F&& f) {
  with_qubit_impl(q, f, std::make_integer_sequence<int, N>{});
}

// Shuffles over the whole warp: every lane of it reaches them (see the kernels' loops).
template <class T>
__device__ __forceinline__ Complex<T> shuffle_xor(const Complex<T>& a, int mask) {
  return {__shfl_xor_sync(0xffffffffu, a.re, mask), __shfl_xor_sync(0xffffffffu, a.im, mask)};
}

template <class T>
__device__ __forceinline__ Complex<T> shuffle_from(const Complex<T>& a, int source, int width) {
  return {__shfl_sync(0xffffffffu, a.re, source, width), __shfl_sync(0xffffffffu, a.im, source, width)};
}

// Measuring a Pauli string = measuring Z on every qubit of its support after rotating each qubit
// into the eigenbasis of its factor: D_Z = I, D_X = H, D_Y = H S^dagger (D P D^dagger = Z).
enum Basis : int { kZBasis = 0, kXBasis = 1, kYBasis = 2 };

// D_basis (row-major).
template <class T>
__device__ __forceinline__ void measuring_rotation(int basis, Complex<T> (&d)[4]) {
  const T r = static_cast<T>(0.70710678118654752440);
  if (basis == kZBasis) {
    d[0] = {1, 0}, d[1] = {0, 0}, d[2] = {0, 0}, d[3] = {1, 0};
  } else if (basis == kXBasis) {
    d[0] = {r, 0}, d[1] = {r, 0}, d[2] = {r, 0}, d[3] = {-r, 0};
  } else {
    d[0] = {r, 0}, d[1] = {0, -r}, d[2] = {r, 0}, d[3] = {0, r};
  }
}

// D_to D_from^dagger (row-major): takes a qubit's amplitudes from one measuring basis to another.
template <class T>
__device__ __forceinline__ void basis_change(int from, int to, Complex<T> (&m)[4]) {
  Complex<T> a[4], b[4];
  measuring_rotation(to, a);
  measuring_rotation(from, b);
  // m[row][col] = sum_k a[row][k] conj(b[col][k])
#pragma unroll
  for (int row = 0; row < 2; ++row) {
#pragma unroll
    for (int col = 0; col < 2; ++col) {
      const Complex<T> b0{b[2 * col].re, -b[2 * col].im}, b1{b[2 * col + 1].re, -b[2 * col + 1].im};
      m[2 * row + col] = cmul_add(a[2 * row], b0, a[2 * row + 1], b1);
    }
  }
}

template <class T, int N>
class GroupState {
 public:
  using Layout = GroupLayout<T, N>;
  static constexpr int kLaneBits = Layout::kLaneBits;
  static constexpr int kRegBits = Layout::kRegBits;
  static constexpr int kLanes = Layout::kLanes;
  static constexpr int kRegs = Layout::kRegs;

  // `lane`: this thread's place in its group, threadIdx.x mod kLanes.
  __device__ __forceinline__ explicit GroupState(int lane) : lane_(kLanes == 1 ? 0 : lane) {}

  // The tensor product of the qubits' prefix states. The lanes of a group prepare different
  // qubits (qubit q on lane q mod kLanes), then read each other's 2-vectors by shuffles.
  __device__ __forceinline__ void prepare(const Program& prog, const T* theta, const T* grad) {
    using Ops = ScalarOps<T>;
    constexpr int kPerLane = (N + kLanes - 1) / kLanes;
    Complex<T> mine[kPerLane][2];
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int q = lane_ + k * kLanes;
      mine[k][0] = mine[k][1] = Complex<T>{0, 0};
      if (q < N) prepare_qubit<Ops, N>(prog, q, theta, grad, mine[k][0], mine[k][1]);
    }
    Complex<T> lane_factor{1, 0};
#pragma unroll
    for (int q = 0; q < kLaneBits; ++q) {  // qubit q < kLanes is lane q's first
      const Complex<T> a0 = from_lane(mine[0][0], q), a1 = from_lane(mine[0][1], q);
      lane_factor = cmul(lane_factor, (lane_ >> q & 1) ? a1 : a0);
    }
    amp_[0] = lane_factor;
#pragma unroll
    for (int r = 0; r < kRegBits; ++r) {
      const int q = kLaneBits + r;
      const Complex<T> a0 = from_lane(mine[q / kLanes][0], q % kLanes);
      const Complex<T> a1 = from_lane(mine[q / kLanes][1], q % kLanes);
      // A constant trip count: an inner bound that depends on r is not unrolled, and a register
      // array indexed in a loop moves to local memory.
#pragma unroll
      for (int j = 0; j < kRegs / 2; ++j) {
        if (j >= (1 << r)) break;
        amp_[j + (1 << r)] = cmul(amp_[j], a1);
        amp_[j] = cmul(amp_[j], a0);
      }
    }
  }

  // The program's entangled part (its blocks).
  __device__ __forceinline__ void apply_blocks(const Program& prog, const T* theta, const T* grad) {
    // The lanes of a group take the sines and cosines of kLanes blocks' rotations at a time (lane l
    // those of block chunk + l) and pass them round, instead of each lane computing every one.
    for (int chunk = 0; chunk < prog.n_blocks; chunk += kLanes) {
      T my_sine = 0, my_cosine = 1;
      if constexpr (kLanes > 1) {
        const int mine = chunk + lane_;
        if (mine < prog.n_blocks && lone_rotation(prog, prog.blocks[mine]))
          half_angle<ScalarOps<T>, N>(prog.gates[prog.blocks[mine].first], theta, grad, my_sine, my_cosine);
      }
      const int end = chunk + kLanes < prog.n_blocks ? chunk + kLanes : prog.n_blocks;
      for (int b = chunk; b < end; ++b) apply_block(prog, prog.blocks[b], theta, grad, my_sine, my_cosine, b - chunk);
    }
  }

  // Block `blk`; for a lone rotation, lane `source` of the group holds its half angle's sine and cosine.
  __device__ __forceinline__ void apply_block(const Program& prog, const Block& blk, const T* theta, const T* grad,
                                              T sine, T cosine, int source) {
    if (blk.kind == kBlockCX) {
      const int control = blk.q0;
      with_qubit<N>(blk.q1, [&](auto target) { apply_cx<decltype(target)::value>(control); });
    } else if (blk.kind == kBlockCZ) {
      apply_cz(blk.q0, blk.q1);
    } else if (lone_rotation(prog, blk)) {
      // A lone rotation has half the arithmetic of a general 2x2 unitary (and RZ no partner).
      const Gate& g = prog.gates[blk.first];
      if constexpr (kLanes > 1) {
        sine = __shfl_sync(0xffffffffu, sine, source, kLanes);
        cosine = __shfl_sync(0xffffffffu, cosine, source, kLanes);
      } else {
        half_angle<ScalarOps<T>, N>(g, theta, grad, sine, cosine);
      }
      const int kind = g.kind;
      with_qubit<N>(blk.q0, [&](auto q) { rotate<decltype(q)::value>(kind, sine, cosine); });
    } else {
      Complex<T> u[4];
      fused_unitary<ScalarOps<T>, N>(prog, blk, theta, grad, u);
      apply_unitary_to(blk.q0, u);
    }
  }

  static __device__ __forceinline__ bool lone_rotation(const Program& prog, const Block& blk) {
    return blk.kind == kFused && blk.count == 1 && is_rotation(prog.gates[blk.first].kind);
  }

  // Writes the state as interleaved (re, im) pairs of row[0, 2^(N+1)).
  __device__ __forceinline__ void store(T* row) const {
    using Pair = std::conditional_t<sizeof(T) == 4, float2, double2>;
    const bool paired = (reinterpret_cast<std::uintptr_t>(row) & (2 * sizeof(T) - 1)) == 0;
#pragma unroll
    for (int j = 0; j < kRegs; ++j) {
      const std::uint32_t i = index(j);
      if (paired) {
        reinterpret_cast<Pair*>(row)[i] = Pair{amp_[j].re, amp_[j].im};
      } else {
        row[2 * i] = amp_[j].re;
        row[2 * i + 1] = amp_[j].im;
      }
    }
  }

  // e[k] = <psi|P_k|psi> for the program's observables, on every lane of the group. Rotates the
  // state's qubits into the measuring bases as it goes: the state is spent afterwards. A qubit
  // stays in the basis it was last turned to, so observables that share factors (X on every
  // qubit, say) turn it once.
  __device__ __forceinline__ void expectations(const Program& prog, T (&e)[N]) {
    unsigned in_x = 0, in_y = 0;  // qubits now in the X or the Y basis (others in Z)
    for (int k = 0; k < N; ++k) {
      const PauliString& p = prog.observables[k];
      const unsigned support = p.x_mask | p.z_mask;
      const unsigned want_x = p.x_mask & ~p.z_mask, want_y = p.x_mask & p.z_mask;
      for (unsigned change = support & ((in_x ^ want_x) | (in_y ^ want_y)); change != 0; change &= change - 1) {
        const unsigned bit = change & (0u - change);
        const int from = (in_x & bit) ? kXBasis : (in_y & bit) ? kYBasis : kZBasis;
        const int to = (want_x & bit) ? kXBasis : (want_y & bit) ? kYBasis : kZBasis;
        Complex<T> m[4];
        basis_change<T>(from, to, m);
        apply_unitary_to(__ffs(static_cast<int>(bit)) - 1, m);
        in_x = (in_x & ~bit) | (want_x & bit);
        in_y = (in_y & ~bit) | (want_y & bit);
      }
      T sum = z_string_sum(support);
#pragma unroll
      for (int mask = 1; mask < kLanes; mask <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, mask);
      if (p.negative) sum = -sum;
      // A register array written at a run-time index would move to local memory.
#pragma unroll
      for (int kk = 0; kk < N; ++kk)
        if (kk == k) e[kk] = sum;
    }
  }

 private:
  // The value v of lane `source` of this group.
  static __device__ __forceinline__ Complex<T> from_lane(const Complex<T>& v, int source) {
    if constexpr (kLanes == 1) {
      return v;
    } else {
      return shuffle_from(v, source, kLanes);
    }
  }

  __device__ __forceinline__ std::uint32_t index(int j) const { return static_cast<std::uint32_t>(j * kLanes + lane_); }

  __device__ __forceinline__ void apply_unitary_to(int q, const Complex<T> (&u)[4]) {
    with_qubit<N>(q, [&](auto qubit) { apply_unitary<decltype(qubit)::value>(u); });
  }

  // This lane's share of sum_i |psi_i|^2 (-1)^popcount(i & support): the register bits are
  // folded one at a time (pairs j, j + 2^r add or subtract as bit r is in the support), the lane
  // bits give one sign.
  __device__ __forceinline__ T z_string_sum(unsigned support) const {
    T folded[kRegs];
#pragma unroll
    for (int j = 0; j < kRegs; ++j) folded[j] = amp_[j].re * amp_[j].re + amp_[j].im * amp_[j].im;
#pragma unroll
    for (int r = kRegBits - 1; r >= 0; --r) {
      const T sign = (support >> (kLaneBits + r) & 1) ? T(-1) : T(1);
#pragma unroll
      for (int j = 0; j < kRegs / 2; ++j) {  // a constant trip count (see prepare)
        if (j >= (1 << r)) break;
        folded[j] = folded[j] + sign * folded[j + (1 << r)];
      }
    }
    return parity(static_cast<unsigned>(lane_) & support) ? -folded[0] : folded[0];
  }

  // The rotation `kind` with half-angle sine s and cosine c (see statevector.h's rotate) on qubit Q.
  template <int Q>
  __device__ __forceinline__ void rotate(int kind, T s, T c) {
    if constexpr (Q < kLaneBits) {
      // sigma: +1 on the lanes that hold bit Q = 1, -1 on the others.
      const T sigma = (lane_ >> Q & 1) ? T(1) : T(-1);
      if (kind == kRZ) {  // diag(c - is, c + is): no partner needed
        const T t = -sigma * s;
#pragma unroll
        for (int j = 0; j < kRegs; ++j) amp_[j] = {c * amp_[j].re + t * amp_[j].im, c * amp_[j].im - t * amp_[j].re};
      } else if (kind == kRX) {  // both halves: c self - is partner
#pragma unroll
        for (int j = 0; j < kRegs; ++j) {
          const Complex<T> partner = shuffle_xor(amp_[j], 1 << Q);
          amp_[j] = {c * amp_[j].re + s * partner.im, c * amp_[j].im - s * partner.re};
        }
      } else {  // kRY: c self - s partner on the low half, c self + s partner on the high half
        const T t = sigma * s;
#pragma unroll
        for (int j = 0; j < kRegs; ++j) {
          const Complex<T> partner = shuffle_xor(amp_[j], 1 << Q);
          amp_[j] = {c * amp_[j].re + t * partner.re, c * amp_[j].im + t * partner.im};
        }
      }
    } else {
      constexpr int bit = 1 << (Q - kLaneBits);
      // One loop per kind, so that rotate's branch on the kind folds away inside each.
      const auto each_pair = [&](auto kind_constant) {
#pragma unroll
        for (int j = 0; j < kRegs; ++j) {
          if (j & bit) continue;
          sp::rotate<T>(decltype(kind_constant)::value, s, c, amp_[j], amp_[j | bit]);
        }
      };
      if (kind == kRX) {
        each_pair(std::integral_constant<int, kRX>{});
      } else if (kind == kRY) {
        each_pair(std::integral_constant<int, kRY>{});
      } else {
        each_pair(std::integral_constant<int, kRZ>{});
      }
    }
  }

  // The 2x2 unitary u (row-major) on qubit Q.
  template <int Q>
  __device__ __forceinline__ void apply_unitary(const Complex<T> (&u)[4]) {
    if constexpr (Q < kLaneBits) {
      // This lane holds the amplitude whose bit Q is its own; the partner lane the other one.
      const bool high = lane_ >> Q & 1;
      const Complex<T> self = high ? u[3] : u[0], other = high ? u[2] : u[1];
#pragma unroll
      for (int j = 0; j < kRegs; ++j) amp_[j] = cmul_add(self, amp_[j], other, shuffle_xor(amp_[j], 1 << Q));
    } else {
      constexpr int bit = 1 << (Q - kLaneBits);
#pragma unroll
      for (int j = 0; j < kRegs; ++j) {
        if (j & bit) continue;
        const Complex<T> a0 = amp_[j], a1 = amp_[j | bit];
        amp_[j] = cmul_add(u[0], a0, u[1], a1);
        amp_[j | bit] = cmul_add(u[2], a0, u[3], a1);
      }
    }
  }

  // CX with target Q: amplitude i takes amplitude i ^ (1 << Q) where bit `control` of i is set.
  template <int Q>
  __device__ __forceinline__ void apply_cx(int control) {
    if constexpr (Q < kLaneBits) {
#pragma unroll
      for (int j = 0; j < kRegs; ++j) {
        const Complex<T> partner = shuffle_xor(amp_[j], 1 << Q);
        if (index(j) >> control & 1) amp_[j] = partner;
      }
    } else {
      constexpr int bit = 1 << (Q - kLaneBits);
#pragma unroll
      for (int j = 0; j < kRegs; ++j) {
        if ((j & bit) || !(index(j) >> control & 1)) continue;
        const Complex<T> t = amp_[j];
        amp_[j] = amp_[j | bit];
        amp_[j | bit] = t;
      }
    }
  }

  __device__ __forceinline__ void apply_cz(int a, int b) {
    const std::uint32_t both = (1u << a) | (1u << b);
#pragma unroll
    for (int j = 0; j < kRegs; ++j) {
      if ((index(j) & both) == both) amp_[j] = Complex<T>{-amp_[j].re, -amp_[j].im};
    }
  }

  Complex<T> amp_[kRegs];
  int lane_;
};

}  // namespace sp::cuda
