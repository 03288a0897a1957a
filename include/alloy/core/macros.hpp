// Portability macros: the same element math compiles for the host (plain C++) and for CUDA.
#pragma once

#include "../version.hpp"

#if defined(__CUDACC__)
#define ALLOY_HD __host__ __device__ __forceinline__
#define ALLOY_DEVICE_COMPILE 1
#else
#define ALLOY_HD inline
#define ALLOY_DEVICE_COMPILE 0
#endif

#if defined(__CUDA_ARCH__)
#define ALLOY_ON_DEVICE 1
#else
#define ALLOY_ON_DEVICE 0
#endif

#if defined(__GNUC__)
#define ALLOY_HIDDEN __attribute__((visibility("hidden")))
#else
#define ALLOY_HIDDEN
#endif

#if defined(__CUDACC__) || defined(__GNUC__)
#define ALLOY_RESTRICT __restrict__
#else
#define ALLOY_RESTRICT
#endif
