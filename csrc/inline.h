// SP_INLINE: a function every backend compiles. Under nvcc it is callable from
// host and device code; on the CPU it is forced inline, so the SIMD kernels
// see through it (a call would stop a loop from vectorising).
#pragma once

#if defined(__CUDACC__)
#define SP_INLINE __host__ __device__ __forceinline__
#else
#define SP_INLINE inline __attribute__((always_inline))
#endif
