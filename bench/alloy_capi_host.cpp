// The ctypes shim of bench/alloy_capi.cu over the host executor: the parity scripts' `--device
// cpu` (torch CPU tensors; no GPU needed). Target alloy_capi_host (ALLOY_BUILD_HOST_CAPI=ON).
#define ALLOY_CAPI_HOST 1
#include "alloy_capi.cu"
