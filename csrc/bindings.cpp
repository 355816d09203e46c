// The only file that knows Python. It takes raw pointers (tensor.data_ptr()),
// sizes, strides and dtype names, checks what it can, and calls the kernels with
// the GIL released. Nothing here links or includes libtorch.
#include <pybind11/pybind11.h>
#include <pybind11/complex.h>
#include <pybind11/stl.h>

#include <complex>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "circuit.h"
#include "compile.h"
#include "cpu/kernels.h"
#ifdef SP_WITH_CUDA
#include "cuda/kernels.h"
#endif

namespace py = pybind11;

namespace {

using GateTuple = std::tuple<int, int, int, int, int, double, double>;  // kind, q0, q1, source, index, scale, offset
using ObservableTuple = std::tuple<std::string, bool>;                   // pauli, negative

std::uint8_t small(int value, const char* what) {
  if (value < 0 || value > 255) throw std::invalid_argument(std::string(what) + " out of range");
  return static_cast<std::uint8_t>(value);
}

sp::Program compile_program(int n_qubits, const std::vector<GateTuple>& gate_tuples,
                            const std::vector<ObservableTuple>& observable_tuples, bool keep_state) {
  std::vector<sp::Gate> gates;
  gates.reserve(gate_tuples.size());
  for (const auto& [kind, q0, q1, source, index, scale, offset] : gate_tuples) {
    sp::Gate g{};
    g.kind = small(kind, "gate kind");
    g.q0 = small(q0, "qubit index");
    g.q1 = small(q1, "qubit index");
    g.angle = sp::Angle{scale, offset, small(source, "angle source"), small(index, "angle input index")};
    gates.push_back(g);
  }
  std::vector<sp::Observable> observables;
  for (const auto& [pauli, negative] : observable_tuples) {
    if (pauli.size() != 1) throw std::invalid_argument("an observable is one of 'X', 'Y', 'Z', got '" + pauli + "'");
    observables.push_back(sp::Observable{pauli[0], negative});
  }
  return sp::compile(n_qubits, gates, observables, keep_state);
}

sp::DType dtype_from_name(const std::string& name) {
  if (name == "float32") return sp::DType::kFloat32;
  if (name == "float64") return sp::DType::kFloat64;
  throw std::invalid_argument("the CPU kernel computes in float32 or float64, got " + name);
}

const void* as_pointer(std::uintptr_t address) { return reinterpret_cast<const void*>(address); }

// `out` is the output buffer (or, for the backward pass, the upstream gradient).
void check_simulate_inputs(const sp::Program& prog, std::int64_t batch, std::uintptr_t params, std::uintptr_t grads,
                           std::uintptr_t out) {
  if (batch < 0) throw std::invalid_argument("batch must be non-negative");
  if (prog.uses_params && params == 0) throw std::invalid_argument("this circuit reads parameters: pass params");
  if (prog.uses_grads && grads == 0) throw std::invalid_argument("this circuit reads gradients: pass grads");
  if (out == 0) throw std::invalid_argument("no output buffer");
}

using Stride = std::pair<std::int64_t, std::int64_t>;

// The strided [batch, n] inputs of a simulation (any of the kernels' params structs).
template <class Params>
void set_inputs(Params& p, std::uintptr_t params, Stride params_stride, std::uintptr_t grads, Stride grads_stride) {
  p.params = as_pointer(params);
  p.params_stride[0] = params_stride.first;
  p.params_stride[1] = params_stride.second;
  p.grads = as_pointer(grads);
  p.grads_stride[0] = grads_stride.first;
  p.grads_stride[1] = grads_stride.second;
}

// The fused step's tensor table: `address` holds n rows laid out as sp::StepTensor.
const sp::StepTensor* checked_tensor_table(std::uintptr_t address, int n) {
  if (n < 0) throw std::invalid_argument("n_tensors must be non-negative");
  if (n > 0 && address == 0) throw std::invalid_argument("no tensor table");
  const auto* tensors = reinterpret_cast<const sp::StepTensor*>(address);
  for (int i = 0; i < n; ++i) {
    const sp::StepTensor& t = tensors[i];
    if (t.numel < 0 || (t.numel > 0 && (t.row_length <= 0 || t.numel % t.row_length != 0)))
      throw std::invalid_argument("tensor " + std::to_string(i) + ": row_length must divide numel");
    if (t.step == nullptr || (t.numel > 0 && (!t.param || !t.grad || !t.exp_avg || !t.exp_avg_sq)))
      throw std::invalid_argument("tensor " + std::to_string(i) + ": missing buffer");
  }
  return tensors;
}

void simulate_cpu(const sp::Program& prog, std::uintptr_t params, Stride params_stride,
                  std::uintptr_t grads, Stride grads_stride, std::uintptr_t out,
                  std::uintptr_t state, std::int64_t batch, const std::string& dtype, int num_threads) {
  check_simulate_inputs(prog, batch, params, grads, out);
  sp::cpu::SimulateParams p;
  set_inputs(p, params, params_stride, grads, grads_stride);
  p.out = reinterpret_cast<void*>(out);
  p.state = reinterpret_cast<void*>(state);
  p.batch = batch;
  p.dtype = dtype_from_name(dtype);
  p.num_threads = num_threads;
  py::gil_scoped_release release;
  sp::cpu::kernels().simulate(prog, p);
}

void simulate_backward_cpu(const sp::Program& prog, std::uintptr_t params,
                           Stride params_stride, std::uintptr_t grads,
                           Stride grads_stride, std::uintptr_t weights,
                           std::uintptr_t d_params, std::uintptr_t d_grads, std::int64_t batch,
                           const std::string& dtype, int num_threads) {
  check_simulate_inputs(prog, batch, params, grads, weights);
  sp::cpu::BackwardParams p;
  set_inputs(p, params, params_stride, grads, grads_stride);
  p.weights = as_pointer(weights);
  p.d_params = reinterpret_cast<void*>(d_params);
  p.d_grads = reinterpret_cast<void*>(d_grads);
  p.batch = batch;
  p.dtype = dtype_from_name(dtype);
  p.num_threads = num_threads;
  py::gil_scoped_release release;
  sp::cpu::kernels().backward(prog, p);
}

sp::ParamType param_type_from_name(const std::string& name) {
  if (name == "float32") return sp::ParamType::kFloat32;
  if (name == "float64") return sp::ParamType::kFloat64;
  if (name == "bfloat16") return sp::ParamType::kBFloat16;
  if (name == "float16") return sp::ParamType::kFloat16;
  throw std::invalid_argument("the fused step takes float32, float64, bfloat16 or float16 parameters, got " + name);
}

sp::Coverage coverage_from_name(const std::string& name) {
  if (name == "paper") return sp::Coverage::kPaper;
  if (name == "all") return sp::Coverage::kAll;
  throw std::invalid_argument("coverage is 'paper' or 'all', got '" + name + "'");
}

// `tensors` is the address of an int64 array of n_tensors rows of 7 words laid
// out as sp::cpu::StepTensor (pointers, numel, row_length).
void step_cpu(const sp::Program& prog, std::uintptr_t tensors, int n_tensors, const std::string& dtype, double lr,
              double beta1, double beta2, double eps, double weight_decay, double quantum_weight, bool maximize,
              const std::string& coverage, int num_threads) {
  sp::cpu::StepParams p;
  p.tensors = checked_tensor_table(tensors, n_tensors);
  p.n_tensors = n_tensors;
  p.dtype = param_type_from_name(dtype);
  p.lr = lr;
  p.beta1 = beta1;
  p.beta2 = beta2;
  p.eps = eps;
  p.weight_decay = weight_decay;
  p.quantum_weight = quantum_weight;
  p.maximize = maximize;
  p.coverage = coverage_from_name(coverage);
  p.num_threads = num_threads;
  py::gil_scoped_release release;
  sp::cpu::kernels().step(prog, p);
}

#ifdef SP_WITH_CUDA
// `program` is the address of a device copy of the Program (see Program.to_bytes).
void simulate_cuda(const sp::Program& host_program, std::uintptr_t program, std::uintptr_t params,
                   Stride params_stride, std::uintptr_t grads,
                   Stride grads_stride, std::uintptr_t out, std::uintptr_t state,
                   std::int64_t batch, const std::string& dtype, std::uintptr_t stream) {
  check_simulate_inputs(host_program, batch, params, grads, out);
  if (program == 0) throw std::invalid_argument("no device program");
  sp::cuda::SimulateParams p;
  p.program = reinterpret_cast<const sp::Program*>(program);
  p.product_only = host_program.product_only;
  p.uses_params = host_program.uses_params;
  p.uses_grads = host_program.uses_grads;
  p.n_qubits = host_program.n_qubits;
  set_inputs(p, params, params_stride, grads, grads_stride);
  p.out = reinterpret_cast<void*>(out);
  p.state = reinterpret_cast<void*>(state);
  p.batch = batch;
  p.dtype = dtype_from_name(dtype);
  p.stream = reinterpret_cast<void*>(stream);
  py::gil_scoped_release release;
  sp::cuda::simulate(p);
}

void simulate_backward_cuda(const sp::Program& host_program, std::uintptr_t program, std::uintptr_t params,
                            Stride params_stride, std::uintptr_t grads, Stride grads_stride, std::uintptr_t weights,
                            std::uintptr_t d_params, std::uintptr_t d_grads, std::int64_t batch,
                            const std::string& dtype, std::uintptr_t stream) {
  check_simulate_inputs(host_program, batch, params, grads, weights);
  if (program == 0) throw std::invalid_argument("no device program");
  sp::cuda::BackwardParams p;
  p.program = reinterpret_cast<const sp::Program*>(program);
  p.uses_params = host_program.uses_params;
  p.uses_grads = host_program.uses_grads;
  p.n_qubits = host_program.n_qubits;
  set_inputs(p, params, params_stride, grads, grads_stride);
  p.weights = as_pointer(weights);
  p.d_params = reinterpret_cast<void*>(d_params);
  p.d_grads = reinterpret_cast<void*>(d_grads);
  p.batch = batch;
  p.dtype = dtype_from_name(dtype);
  p.stream = reinterpret_cast<void*>(stream);
  py::gil_scoped_release release;
  sp::cuda::simulate_backward(p);
}

void step_cuda(const sp::Program& host_program, std::uintptr_t program, std::uintptr_t tensors, int n_tensors,
               const std::string& dtype, double lr, std::uintptr_t lr_device, double beta1, double beta2, double eps,
               double weight_decay, double quantum_weight, bool maximize, const std::string& coverage,
               std::uintptr_t stream) {
  if (program == 0) throw std::invalid_argument("no device program");
  sp::cuda::StepParams p;
  p.tensors = checked_tensor_table(tensors, n_tensors);
  p.program = reinterpret_cast<const sp::Program*>(program);
  p.n_qubits = host_program.n_qubits;
  p.product_only = host_program.product_only;
  p.n_tensors = n_tensors;
  p.dtype = param_type_from_name(dtype);
  p.lr = lr;
  p.lr_device = reinterpret_cast<const float*>(lr_device);
  p.beta1 = beta1;
  p.beta2 = beta2;
  p.eps = eps;
  p.weight_decay = weight_decay;
  p.quantum_weight = quantum_weight;
  p.maximize = maximize;
  p.coverage = coverage_from_name(coverage);
  p.stream = reinterpret_cast<void*>(stream);
  py::gil_scoped_release release;
  sp::cuda::step(p);
}
#endif

py::tuple observable_tuple(const sp::PauliString& s) { return py::make_tuple(s.x_mask, s.z_mask, bool(s.negative)); }

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "superpositional's compiled core: circuit compiler and statevector kernels";

  py::class_<sp::Program>(m, "Program", "A circuit compiled for the kernels (read-only).")
      .def_property_readonly("n_qubits", [](const sp::Program& p) { return p.n_qubits; })
      .def_property_readonly("n_gates", [](const sp::Program& p) { return p.n_gates; })
      .def_property_readonly("n_blocks", [](const sp::Program& p) { return p.n_blocks; })
      .def_property_readonly("product_only", [](const sp::Program& p) { return bool(p.product_only); })
      .def_property_readonly("uses_params", [](const sp::Program& p) { return bool(p.uses_params); })
      .def_property_readonly("uses_grads", [](const sp::Program& p) { return bool(p.uses_grads); })
      .def_property_readonly("prefix_lengths",
                             [](const sp::Program& p) {
                               std::vector<int> lengths;
                               for (int q = 0; q < p.n_qubits; ++q)
                                 lengths.push_back(p.prefix_begin[q + 1] - p.prefix_begin[q]);
                               return lengths;
                             })
      .def_property_readonly("initial_states",
                             [](const sp::Program& p) {
                               py::list states;
                               for (int q = 0; q < p.n_qubits; ++q) {
                                 const double* a = p.initial[q];
                                 states.append(py::make_tuple(std::complex<double>(a[0], a[1]),
                                                              std::complex<double>(a[2], a[3])));
                               }
                               return states;
                             },
                             "Per qubit: its state after the leading constant gates, folded at compile time.")
      .def_property_readonly("real_prefix_qubits",
                             [](const sp::Program& p) {
                               std::vector<int> qubits;
                               for (int q = 0; q < p.n_qubits; ++q)
                                 if (p.real_prefix >> q & 1u) qubits.push_back(q);
                               return qubits;
                             })
      .def_property_readonly("blocks",
                             [](const sp::Program& p) {
                               py::list blocks;
                               for (int b = 0; b < p.n_blocks; ++b) {
                                 const sp::Block& blk = p.blocks[b];
                                 const char* kind = blk.kind == sp::kFused ? "fused" : blk.kind == sp::kBlockCX ? "cx" : "cz";
                                 blocks.append(py::make_tuple(kind, blk.q0, blk.q1, blk.count));
                               }
                               return blocks;
                             })
      .def("to_bytes",
           [](const sp::Program& p) { return py::bytes(reinterpret_cast<const char*>(&p), sizeof(sp::Program)); },
           "The plain struct's bytes, to copy to a device as-is.")
      .def_property_readonly("observables",
                             [](const sp::Program& p) {
                               py::list out;
                               for (int k = 0; k < p.n_qubits; ++k) out.append(observable_tuple(p.observables[k]));
                               return out;
                             },
                             "Per output: (x_mask, z_mask, negative), the signed Pauli string measured.");

  m.def("compile", &compile_program, py::arg("n_qubits"), py::arg("gates"), py::arg("observables"),
        py::arg("keep_state"),
        "Compile gates (kind, q0, q1, source, index, scale, offset) and observables (pauli, negative).");
  m.def("simulate_cpu", &simulate_cpu, py::arg("program"), py::arg("params"), py::arg("params_stride"),
        py::arg("grads"), py::arg("grads_stride"), py::arg("out"), py::arg("state"), py::arg("batch"),
        py::arg("dtype"), py::arg("num_threads"));

  m.def("simulate_backward_cpu", &simulate_backward_cpu, py::arg("program"), py::arg("params"),
        py::arg("params_stride"), py::arg("grads"), py::arg("grads_stride"), py::arg("weights"), py::arg("d_params"),
        py::arg("d_grads"), py::arg("batch"), py::arg("dtype"), py::arg("num_threads"),
        "Adjoint-method gradients of sum(weights * expectations) with respect to params and grads (CPU).");
  m.def("step_cpu", &step_cpu, py::arg("program"), py::arg("tensors"), py::arg("n_tensors"), py::arg("dtype"),
        py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("quantum_weight"), py::arg("maximize"), py::arg("coverage"), py::arg("num_threads"),
        "The fused AdamW + circuit step over many tensors (CPU).");

  m.def("cpu_isa", [] { return std::string(sp::cpu::kernels().isa); }, "The instruction set the CPU kernels use.");
  m.def("compiled_cpu_isas", &sp::cpu::compiled_isas);
  m.def("supported_cpu_isas", &sp::cpu::supported_isas);
  m.def("set_cpu_isa", &sp::cpu::set_isa, py::arg("name"));

  m.attr("max_qubits") = sp::kMaxQubits;
  m.attr("max_gates") = sp::kMaxGates;
  m.attr("gate_kinds") = py::dict(py::arg("h") = int(sp::kH), py::arg("x") = int(sp::kX), py::arg("rx") = int(sp::kRX),
                                  py::arg("ry") = int(sp::kRY), py::arg("rz") = int(sp::kRZ),
                                  py::arg("cx") = int(sp::kCX), py::arg("cz") = int(sp::kCZ));
  m.attr("angle_sources") =
      py::dict(py::arg("const") = int(sp::kConst), py::arg("param") = int(sp::kParam), py::arg("grad") = int(sp::kGrad));
#ifdef SP_WITH_CUDA
  m.attr("cuda_compiled") = true;
  m.def("simulate_cuda", &simulate_cuda, py::arg("host_program"), py::arg("program"), py::arg("params"),
        py::arg("params_stride"), py::arg("grads"), py::arg("grads_stride"), py::arg("out"), py::arg("state"),
        py::arg("batch"), py::arg("dtype"), py::arg("stream"));
  m.def("simulate_backward_cuda", &simulate_backward_cuda, py::arg("host_program"), py::arg("program"),
        py::arg("params"), py::arg("params_stride"), py::arg("grads"), py::arg("grads_stride"), py::arg("weights"),
        py::arg("d_params"), py::arg("d_grads"), py::arg("batch"), py::arg("dtype"), py::arg("stream"),
        "Adjoint-method gradients of sum(weights * expectations) with respect to params and grads (CUDA).");
  m.def("step_cuda", &step_cuda, py::arg("host_program"), py::arg("program"), py::arg("tensors"),
        py::arg("n_tensors"), py::arg("dtype"), py::arg("lr"), py::arg("lr_device"), py::arg("beta1"),
        py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("quantum_weight"), py::arg("maximize"),
        py::arg("coverage"), py::arg("stream"), "The fused AdamW + circuit step over many tensors (CUDA).");
  m.def("cuda_devices", [] {
    const sp::cuda::DeviceInfo info = sp::cuda::device_info();
    return py::dict(py::arg("count") = info.count, py::arg("capability") = py::make_tuple(info.major, info.minor),
                    py::arg("multiprocessors") = info.multiprocessors);
  });
  m.attr("cuda_architectures") = std::string(SP_CUDA_ARCHITECTURES);
#else
  m.attr("cuda_compiled") = false;
#endif
  m.attr("compiler") = std::string(__VERSION__);
}
