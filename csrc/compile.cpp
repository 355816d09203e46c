#include "compile.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "statevector.h"

namespace sp {
namespace {

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

void validate(int n_qubits, const std::vector<Gate>& gates, const std::vector<Observable>& observables) {
  if (n_qubits < 1 || n_qubits > kMaxQubits)
    fail("a circuit has 1 to " + std::to_string(kMaxQubits) + " qubits, got " + std::to_string(n_qubits));
  if (static_cast<int>(gates.size()) > kMaxGates)
    fail("a circuit has at most " + std::to_string(kMaxGates) + " gates, got " + std::to_string(gates.size()));
  if (static_cast<int>(observables.size()) != n_qubits)
    fail("expected one observable per qubit (" + std::to_string(n_qubits) + "), got " +
         std::to_string(observables.size()));
  for (const Observable& o : observables)
    if (o.pauli != 'X' && o.pauli != 'Y' && o.pauli != 'Z')
      fail(std::string("an observable is X, Y or Z, got '") + o.pauli + "'");
  for (std::size_t i = 0; i < gates.size(); ++i) {
    const Gate& g = gates[i];
    const std::string where = "gate " + std::to_string(i) + ": ";
    if (g.kind > kCZ) fail(where + "unknown gate kind " + std::to_string(g.kind));
    if (g.q0 >= n_qubits) fail(where + "qubit " + std::to_string(g.q0) + " out of range");
    if (is_two_qubit(g.kind)) {
      if (g.q1 >= n_qubits) fail(where + "qubit " + std::to_string(g.q1) + " out of range");
      if (g.q0 == g.q1) fail(where + "a two-qubit gate needs two different qubits");
    }
    if (is_rotation(g.kind)) {
      if (g.angle.source > kGrad) fail(where + "unknown angle source");
      if (g.angle.source != kConst && g.angle.index >= n_qubits)
        fail(where + "angle input index " + std::to_string(g.angle.index) + " out of range");
    }
  }
}

PauliString to_string(int qubit, const Observable& o) {
  const std::uint16_t bit = static_cast<std::uint16_t>(1u << qubit);
  PauliString p{0, 0, static_cast<std::uint8_t>(o.negative)};
  if (o.pauli != 'Z') p.x_mask = bit;
  if (o.pauli != 'X') p.z_mask = bit;
  return p;
}

bool bit(unsigned mask, int q) { return (mask >> q) & 1u; }

void flip(std::uint16_t& mask, int q, bool on) {
  if (on) mask = static_cast<std::uint16_t>(mask ^ (1u << q));
}

// p <- G^dagger p G for a self-inverse Clifford gate G, in the phase
// conventions of Aaronson and Gottesman's tableau.
void conjugate(PauliString& p, const Gate& g) {
  const int a = g.q0, b = g.q1;
  switch (g.kind) {
    case kH: {
      const bool x = bit(p.x_mask, a), z = bit(p.z_mask, a);
      p.negative ^= static_cast<std::uint8_t>(x && z);  // H Y H = -Y
      flip(p.x_mask, a, x != z);
      flip(p.z_mask, a, x != z);
      break;
    }
    case kX:  // X Z X = -Z, X Y X = -Y
      p.negative ^= static_cast<std::uint8_t>(bit(p.z_mask, a));
      break;
    case kCX: {
      const bool xc = bit(p.x_mask, a), zc = bit(p.z_mask, a), xt = bit(p.x_mask, b), zt = bit(p.z_mask, b);
      p.negative ^= static_cast<std::uint8_t>(xc && zt && (xt == zc));
      flip(p.x_mask, b, xc);
      flip(p.z_mask, a, zt);
      break;
    }
    case kCZ: {
      const bool xa = bit(p.x_mask, a), za = bit(p.z_mask, a), xb = bit(p.x_mask, b), zb = bit(p.z_mask, b);
      p.negative ^= static_cast<std::uint8_t>(xa && xb && (za != zb));
      flip(p.z_mask, a, xb);
      flip(p.z_mask, b, xa);
      break;
    }
    default:
      break;
  }
}

// A rotation about axis P on qubit q commutes with a string whose factor on q
// is the identity or P itself.
bool commutes(const PauliString& p, const Gate& g) {
  const bool x = bit(p.x_mask, g.q0), z = bit(p.z_mask, g.q0);
  if (!x && !z) return true;
  switch (g.kind) {
    case kRX: return x && !z;
    case kRY: return x && z;
    case kRZ: return !x && z;
    default: return false;
  }
}

// Scalar double lanes, to run the shared gate math at compile time.
struct HostDouble {
  using S = double;
  using V = double;
  static double splat(double x) { return x; }
  static void sincos(double x, double& s, double& c) {
    s = std::sin(x);
    c = std::cos(x);
  }
};

bool is_constant(const Gate& g) { return !is_rotation(g.kind) || g.angle.source == kConst; }

unsigned qubit_mask(const Gate& g) {
  return (1u << g.q0) | (is_two_qubit(g.kind) ? (1u << g.q1) : 0u);
}

// A rotation's angle enters the circuit only through the cosine and sine of its half, which have
// period 4 pi. Each offset (a constant angle's value, or the constant part of an affine one) is
// replaced by the angle in (-2 pi, 2 pi] with the same half-angle cosine and sine, found in double
// precision with the math library's exact argument reduction: the state is unchanged, and a
// kernel computing in float32 never meets an offset beyond its range (rx(0, 1e39) gave NaN) or
// its precision.
std::vector<Gate> with_reduced_offsets(std::vector<Gate> gates) {
  for (Gate& g : gates) {
    if (!is_rotation(g.kind)) continue;
    const double half = g.angle.offset / 2;
    g.angle.offset = 2 * std::atan2(std::sin(half), std::cos(half));
  }
  return gates;
}

}  // namespace

Program compile(int n_qubits, const std::vector<Gate>& given_gates, const std::vector<Observable>& observables,
                bool keep_state) {
  validate(n_qubits, given_gates, observables);
  const std::vector<Gate> gates = with_reduced_offsets(given_gates);

  Program prog{};
  prog.n_qubits = n_qubits;
  for (int k = 0; k < n_qubits; ++k) prog.observables[k] = to_string(k, observables[k]);

  // Pass 1: absorb or drop the tail.
  std::vector<bool> kept(gates.size(), true);
  if (!keep_state) {
    unsigned blocked = 0;  // qubits that still have a kept gate later on
    for (std::size_t i = gates.size(); i-- > 0;) {
      const Gate& g = gates[i];
      const unsigned qubits = qubit_mask(g);
      if (qubits & blocked) {
        blocked |= qubits;
        continue;
      }
      if (!is_rotation(g.kind)) {
        for (int k = 0; k < n_qubits; ++k) conjugate(prog.observables[k], g);
        kept[i] = false;
        continue;
      }
      bool all_commute = true;
      for (int k = 0; k < n_qubits; ++k) all_commute = all_commute && commutes(prog.observables[k], g);
      if (all_commute) {
        kept[i] = false;
      } else {
        blocked |= qubits;
      }
    }
  }

  // Pass 2: the product prefix, qubit by qubit.
  std::vector<std::size_t> first_entangling(n_qubits, gates.size());
  for (std::size_t i = gates.size(); i-- > 0;) {
    if (kept[i] && is_two_qubit(gates[i].kind)) {
      first_entangling[gates[i].q0] = i;
      first_entangling[gates[i].q1] = i;
    }
  }
  auto push_gate = [&prog](const Gate& g) { prog.gates[prog.n_gates++] = g; };
  std::vector<bool> in_prefix(gates.size(), false);
  for (int q = 0; q < n_qubits; ++q) {
    // Leading gates with constant angles are applied now, in double precision.
    Complex<double> a0{1.0, 0.0}, a1{0.0, 0.0};
    bool folding = true;
    bool real = true;
    prog.prefix_begin[q] = prog.n_gates;
    for (std::size_t i = 0; i < first_entangling[q]; ++i) {
      if (!kept[i] || gates[i].q0 != q || is_two_qubit(gates[i].kind)) continue;
      in_prefix[i] = true;
      if (folding && is_constant(gates[i])) {
        apply_gate<HostDouble, 1>(gates[i], nullptr, nullptr, a0, a1);  // constant angles read no input
        continue;
      }
      folding = false;
      real = real && (gates[i].kind == kH || gates[i].kind == kX || gates[i].kind == kRY);
      push_gate(gates[i]);
    }
    const double initial[4] = {a0.re, a0.im, a1.re, a1.im};
    for (int j = 0; j < 4; ++j) prog.initial[q][j] = initial[j];
    if (real && a0.im == 0.0 && a1.im == 0.0) prog.real_prefix |= static_cast<std::uint16_t>(1u << q);
  }
  prog.prefix_begin[n_qubits] = prog.n_gates;

  // Pass 3: fuse runs of one-qubit gates between the entangling ones.
  std::vector<std::vector<std::size_t>> pending(n_qubits);
  auto emit_fused = [&](int q) {
    if (pending[q].empty()) return;
    Block blk{static_cast<std::uint16_t>(prog.n_gates), static_cast<std::uint16_t>(pending[q].size()), kFused,
              static_cast<std::uint8_t>(q), 0};
    for (std::size_t i : pending[q]) push_gate(gates[i]);
    prog.blocks[prog.n_blocks++] = blk;
    pending[q].clear();
  };
  for (std::size_t i = 0; i < gates.size(); ++i) {
    if (!kept[i] || in_prefix[i]) continue;
    const Gate& g = gates[i];
    if (!is_two_qubit(g.kind)) {
      pending[g.q0].push_back(i);
      continue;
    }
    emit_fused(g.q0);
    emit_fused(g.q1);
    prog.blocks[prog.n_blocks++] = Block{0, 0, g.kind == kCX ? kBlockCX : kBlockCZ, g.q0, g.q1};
  }
  for (int q = 0; q < n_qubits; ++q) emit_fused(q);

  prog.product_only = prog.n_blocks == 0;
  for (int k = 0; k < n_qubits; ++k) {
    const PauliString& p = prog.observables[k];
    for (int q = 0; q < n_qubits; ++q) {
      const bool x = bit(p.x_mask, q), z = bit(p.z_mask, q);
      if (!x && !z) continue;
      const int pauli = x && z ? 1 : x ? 0 : 2;
      prog.paulis_needed[q] |= static_cast<std::uint8_t>(1u << pauli);
      prog.factors[k][prog.n_factors[k]++] = static_cast<std::uint8_t>(3 * q + pauli);
    }
  }
  for (int i = 0; i < prog.n_gates; ++i) {
    const Gate& g = prog.gates[i];
    if (!is_rotation(g.kind)) continue;
    prog.uses_params |= g.angle.source == kParam;
    prog.uses_grads |= g.angle.source == kGrad;
  }
  return prog;
}

}  // namespace sp
