// The compiled circuit program: a plain struct that every kernel (CPU and CUDA) reads.
//
// A `Program` is produced once per circuit on the host (compile.h) and is then
// shared, read-only, by every circuit of a batch: the structure is common, only
// the angle inputs differ from row to row. It has fixed capacity so that it can
// be copied by value into a CUDA kernel's parameters or constant memory.
#pragma once

#include <cstdint>

namespace sp {

inline constexpr int kMaxQubits = 10;
// Gates after compilation. Presets need a handful; the bound keeps the struct a
// fixed size that fits a kernel parameter block (see static_assert below).
inline constexpr int kMaxGates = 512;
inline constexpr int kMaxBlocks = 512;

enum GateKind : std::uint8_t { kH = 0, kX = 1, kRX = 2, kRY = 3, kRZ = 4, kCX = 5, kCZ = 6 };

constexpr bool is_two_qubit(int kind) { return kind == kCX || kind == kCZ; }
constexpr bool is_rotation(int kind) { return kind == kRX || kind == kRY || kind == kRZ; }

// Where a rotation angle comes from: angle = scale * input[index] + offset.
// A constant angle has source kConst and its value in `offset`.
enum AngleSource : std::uint8_t { kConst = 0, kParam = 1, kGrad = 2 };

struct Angle {
  double scale;
  double offset;
  std::uint8_t source;
  std::uint8_t index;
};

struct Gate {
  Angle angle;  // meaningful for rotations only
  std::uint8_t kind;
  std::uint8_t q0;  // target of a 1-qubit gate; control of CX; first qubit of CZ
  std::uint8_t q1;  // target of CX; second qubit of CZ
};

// A step of the entangled part of a program. A kFused block applies the product
// of gates[first, first + count) (all on qubit q0, in order) as one 2x2 unitary.
enum BlockKind : std::uint8_t { kFused = 0, kBlockCX = 1, kBlockCZ = 2 };

struct Block {
  std::uint16_t first;
  std::uint16_t count;
  std::uint8_t kind;
  std::uint8_t q0;
  std::uint8_t q1;
};

// A signed Pauli string over the qubits, in the symplectic form: qubit q carries
// X if only bit q of x_mask is set, Z if only bit q of z_mask, Y if both.
// Compilation can turn a single-qubit observable into a string by moving
// trailing Clifford gates into it (the Heisenberg picture).
struct PauliString {
  std::uint16_t x_mask;
  std::uint16_t z_mask;
  std::uint8_t negative;
};

struct Program {
  std::int32_t n_qubits;
  std::int32_t n_gates;
  std::int32_t n_blocks;
  // Qubit q starts in the state initial[q] = (a0.re, a0.im, a1.re, a1.im) (the
  // leading gates with constant angles, folded at compile time), then
  // gates[prefix_begin[q], prefix_begin[q + 1]) act on it before it meets any
  // two-qubit gate. The state starts as the tensor product of these.
  double initial[kMaxQubits][4];
  std::int32_t prefix_begin[kMaxQubits + 1];
  // Qubits whose prefix keeps every amplitude real (a real initial state and only
  // H, X and RY): they take a cheaper path with half the arithmetic.
  std::uint16_t real_prefix;
  std::uint8_t uses_grads;  // some angle reads the gradient input
  std::uint8_t uses_params;
  // No block remains: every expectation is a product of one-qubit expectations
  // and no 2^n statevector is ever formed.
  std::uint8_t product_only;
  PauliString observables[kMaxQubits];  // one per output, output k <- qubit k
  // For product_only programs, derived from the observables: which one-qubit
  // expectations each qubit needs (bit 0 X, 1 Y, 2 Z) and, per output, its
  // factors encoded as 3 * qubit + (0 X, 1 Y, 2 Z).
  std::uint8_t paulis_needed[kMaxQubits];
  std::uint8_t n_factors[kMaxQubits];
  std::uint8_t factors[kMaxQubits][kMaxQubits];
  Block blocks[kMaxBlocks];
  Gate gates[kMaxGates];
};

// Hopper and CUDA >= 12.1 accept 32 KiB of kernel parameters.
static_assert(sizeof(Program) <= 32000, "Program must fit a CUDA kernel parameter block");

}  // namespace sp
