#!/usr/bin/env bash
# Copy the binaries a GPU session runs out of a CUDA build directory into a small folder that can
# travel to the GPU machine (the device tool's `carry`), so no device time goes into compiling:
#
#   cmake -S . -B build/gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
#         -DALLOY_CUDA=ON -DALLOY_BUILD_BENCH=ON -DALLOY_BUILD_EXAMPLES=ON
#   cmake --build build/gpu -j2
#   tools/pack_gpu_build.sh build/gpu .gpubin      # then BUILD=.gpubin tools/gpu_session.sh ...
#   PACK="tests demo" tools/pack_gpu_build.sh ...  # a subset: tests, bench, capi, demo (default all)
#
# A call carries at most 64 MiB: the CUDA test binary is about 44 MB, alloy_bench 16, the demo 11,
# the C API library 5.5, and the bitsandbytes wheel 43: tests and the wheel need separate calls.
#
# The layout under the folder is the build directory's, so gpu_session.sh and bench/run.sh find
# the same paths; without a CMakeCache.txt there they run the binaries and build nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SRC=${1:?usage: tools/pack_gpu_build.sh BUILD_DIR [DEST]}
DEST=${2:-.gpubin}
rm -rf "$DEST"
declare -A FILE=([tests]=tests/cuda/alloy_cuda_tests [bench]=bench/alloy_bench
                 [capi]=bench/liballoy_capi.so [demo]=examples/03_train_lm)
for what in ${PACK:-tests bench capi demo}; do
  f=${FILE[$what]:?"pack_gpu_build: unknown part '$what' (tests, bench, capi, demo)"}
  if [[ -f $SRC/$f ]]; then
    mkdir -p "$DEST/$(dirname "$f")"
    cp "$SRC/$f" "$DEST/$f"
    strip --strip-unneeded "$DEST/$f" 2>/dev/null || true
  else
    echo "pack_gpu_build: $SRC/$f not built, left out" >&2
  fi
done
# The commit the binaries were built from, marked -dirty when sources differ from it.
if commit=$(git rev-parse HEAD 2>/dev/null); then
  [[ -n $(git status --porcelain -- include tests bench examples CMakeLists.txt) ]] && commit+=-dirty
  echo "$commit" >"$DEST/COMMIT"
fi
du -sh "$DEST"
