// The kernel table of one instruction set (compiled once per ISA).
#include "isa.h"

#define SP_STR2(x) #x
#define SP_STR(x) SP_STR2(x)

namespace sp::cpu::SP_ISA {

extern const KernelTable table;
const KernelTable table{SP_STR(SP_ISA), &simulate, &step, &backward};

}  // namespace sp::cpu::SP_ISA
