// What every kernel entry point takes, CPU and CUDA alike: one chain of plain
// structs. The base says what to run and where; the batch inputs and the
// per-entry outputs extend it. The bindings fill them; the kernels only read.
#pragma once

#include <cstdint>

#include "adamw.h"
#include "circuit.h"
#include "kernel_types.h"

namespace sp {

// The compiled program and the execution context. Each backend reads the
// context fields it knows and ignores the others.
struct KernelParams {
  // The host copy: the CPU kernels run it; CUDA host code reads the flags its
  // launch depends on (n_qubits, product_only, uses_params, uses_grads).
  const Program* program = nullptr;
  const Program* device_program = nullptr;  // CUDA: the copy the kernels read; null on the CPU
  int num_threads = 0;                      // CPU: OpenMP threads; 0 the OpenMP default
  void* stream = nullptr;                   // CUDA: the cudaStream_t to launch on
};

// A batch of circuits sharing the program, each with its own row of the
// [batch, n] inputs. Strides are in elements, so strided inputs need no copy.
struct BatchParams : KernelParams {
  const void* params = nullptr;  // may be null when the program reads no parameter
  std::int64_t params_stride[2] = {0, 0};
  const void* grads = nullptr;  // may be null when the program reads no gradient
  std::int64_t grads_stride[2] = {0, 0};
  std::int64_t batch = 0;
  DType dtype = DType::kFloat32;  // of the inputs and of every output
};

// Expectations of each circuit of the batch, and optionally its statevector.
struct SimulateParams : BatchParams {
  void* out = nullptr;    // [batch, n] expectations, contiguous
  void* state = nullptr;  // [batch, 2^n] interleaved complex, contiguous; null: not wanted
};

// Gradients of L = sum_k weights[b, k] e[b, k] with respect to params and grads
// (the adjoint method; see adjoint.h).
struct BackwardParams : BatchParams {
  const void* weights = nullptr;  // [batch, n], contiguous: dL/de
  void* d_params = nullptr;       // [batch, n], contiguous; null: not wanted
  void* d_grads = nullptr;        // [batch, n], contiguous; null: not wanted
};

// The fused AdamW + circuit step over a table of tensors of one parameter type.
struct StepParams : KernelParams {
  const StepTensor* tensors = nullptr;  // host array of n_tensors rows
  int n_tensors = 0;
  ParamType dtype = ParamType::kFloat32;
  ParamType state_type = ParamType::kFloat32;  // of every state tensor: dtype, or float32 for 16-bit dtypes
  AdamWHyper hyper;
  // When set, the learning rate is read from here (a float32 scalar on the
  // kernel's device) instead of hyper.lr: on CUDA the step then needs no host
  // value and can be captured in a graph.
  const float* lr_device = nullptr;
  Coverage coverage = Coverage::kPaper;
};

}  // namespace sp
