// Run-time choice among the per-ISA kernel tables this build carries.
#include <atomic>
#include <stdexcept>

#include "kernels.h"

// Each ISA's table lives in its own namespace; CMake says which were built.
#define SP_DECLARE_TABLE(isa) \
  namespace sp::cpu::isa {    \
  extern const KernelTable table; \
  }
SP_DECLARE_TABLE(generic)
#ifdef SP_HAVE_AVX2
SP_DECLARE_TABLE(avx2)
#endif
#ifdef SP_HAVE_AVX512
SP_DECLARE_TABLE(avx512)
#endif
#undef SP_DECLARE_TABLE

namespace sp::cpu {
namespace {

struct Candidate {
  const KernelTable* table;
  bool (*supported)();
};

bool always() { return true; }
#ifdef SP_HAVE_AVX2
// F16C (float16 conversions in hardware) came with every AVX2 CPU; checked all the same.
bool has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
#endif
#ifdef SP_HAVE_AVX512
bool has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}
#endif

// Best first.
const Candidate kCandidates[] = {
#ifdef SP_HAVE_AVX512
    {&avx512::table, has_avx512},
#endif
#ifdef SP_HAVE_AVX2
    {&avx2::table, has_avx2},
#endif
    {&generic::table, always},
};

const KernelTable* best_supported() {
  for (const Candidate& c : kCandidates)
    if (c.supported()) return c.table;
  return &generic::table;
}

std::atomic<const KernelTable*>& active() {
  static std::atomic<const KernelTable*> table{best_supported()};
  return table;
}

}  // namespace

namespace {
std::atomic<bool> g_parallel_team_opened{false};
}  // namespace

bool parallel_team_opened() { return g_parallel_team_opened.load(std::memory_order_relaxed); }
void mark_parallel_team_opened() { g_parallel_team_opened.store(true, std::memory_order_relaxed); }

std::vector<std::string> compiled_isas() {
  std::vector<std::string> names;
  for (const Candidate& c : kCandidates) names.emplace_back(c.table->isa);
  return names;
}

std::vector<std::string> supported_isas() {
  std::vector<std::string> names;
  for (const Candidate& c : kCandidates)
    if (c.supported()) names.emplace_back(c.table->isa);
  return names;
}

const KernelTable& kernels() { return *active().load(std::memory_order_acquire); }

void set_isa(const std::string& name) {
  for (const Candidate& c : kCandidates) {
    if (name == c.table->isa) {
      if (!c.supported()) throw std::invalid_argument("this CPU cannot run the '" + name + "' kernels");
      active().store(c.table, std::memory_order_release);
      return;
    }
  }
  std::string known;
  for (const std::string& s : compiled_isas()) known += (known.empty() ? "" : ", ") + s;
  throw std::invalid_argument("no CPU kernels named '" + name + "' in this build (built: " + known + ")");
}

}  // namespace sp::cpu
