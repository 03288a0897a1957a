// alloy, host-only subset: compiles with a plain C++20 compiler, no CUDA toolkit needed.
// Everything here runs on the host executor; <alloy/alloy.cuh> adds the CUDA executor.
#pragma once

#include "compose.hpp"
#include "core/allocator.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/fpmath.hpp"
#include "core/options.hpp"
#include "core/philox.hpp"
#include "core/tensor.hpp"
#include "exec/host.hpp"
#include "grad/backprop.hpp"
#include "optimizer.hpp"
#include "rule/adamw.hpp"
#include "rule/sgd.hpp"
#include "share/partition.hpp"
#include "share/per_parameter.hpp"
#include "state/bf16.hpp"
#include "state/quant_map.hpp"
#include "state/fp32.hpp"
#include "state/int8.hpp"
#include "version.hpp"
