// Vocabulary shared by the CPU and CUDA entry points: dtypes, coverage, the
// fused step's tensor table, and the dispatch from a run-time dtype and qubit
// count to compile-time ones.
#pragma once

#include <cstdint>
#include <type_traits>

#include "circuit.h"

namespace sp {

enum class DType : int { kFloat32 = 0, kFloat64 = 1 };

// Storage types of the fused step's parameters and states. Math is float32
// (float64 for float64 parameters); the states (exp_avg, exp_avg_sq,
// max_exp_avg_sq) of 16-bit parameters are float32 or the parameter's own type
// (the param group's state_dtype), those of the others the parameter's type.
enum class ParamType : int { kFloat32 = 0, kFloat64 = 1, kBFloat16 = 2, kFloat16 = 3 };

// The math type of a parameter storage type P: double for double, float for
// every other (float, bfloat16, half), as geometry.compute_dtype says in Python.
template <class P>
using MathOf = std::conditional_t<std::is_same_v<P, double>, double, float>;

// Which coordinates form circuit groups (docs/design.md, The mathematics).
enum class Coverage : int {
  kPaper = 0,  // the first n elements of each flattened tensor; e = 0 elsewhere
  kAll = 1,    // groups of n consecutive elements of each row; a short tail group reads 0s
};

// One parameter tensor of the fused step: every buffer contiguous, in the
// tensor's logical (row-major) order, on the device the kernel runs on. The
// layout is nine 8-byte words so that Python can pass an int64 array of them.
struct StepTensor {
  void* param;
  const void* grad;
  void* exp_avg;
  void* exp_avg_sq;
  void* max_exp_avg_sq;  // AMSGrad's running maximum of exp_avg_sq; null without AMSGrad
  float* step;  // the state's float32 step counter; the kernel reads it and adds 1
  std::int64_t numel;
  std::int64_t row_length;  // elements per row: numel / size(0) for dim >= 2, else numel
  // The parameter's index in its optimizer: which random stream stochastic rounding draws from.
  std::uint64_t rounding_stream;
};
static_assert(sizeof(StepTensor) == 9 * sizeof(std::int64_t), "StepTensor is passed as 9 int64 words");

// Calls f(std::integral_constant<int, n>{}) for the run-time qubit count n, so
// kernels get the state size (and loop bounds) at compile time.
template <class F>
void with_qubit_count(int n, F&& f) {
  static_assert(kMaxQubits == 10, "one case per qubit count");
  switch (n) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 7: return f(std::integral_constant<int, 7>{});
    case 8: return f(std::integral_constant<int, 8>{});
    case 9: return f(std::integral_constant<int, 9>{});
    case 10: return f(std::integral_constant<int, 10>{});
    default: return;  // compile() guarantees 1..kMaxQubits
  }
}

// Calls f(T{}, std::integral_constant<int, n>{}) with T the float type of dtype:
// the dispatch of every batched entry point (simulate, backward).
template <class F>
void with_batch_types(DType dtype, int n, F&& f) {
  with_qubit_count(n, [&](auto qubits) {
    if (dtype == DType::kFloat64) {
      f(double{}, qubits);
    } else {
      f(float{}, qubits);
    }
  });
}

}  // namespace sp
