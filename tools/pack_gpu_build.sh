#!/usr/bin/env bash
# Copy the binaries a GPU session runs out of a CUDA build directory into a small folder that can
# travel to the GPU machine (the device tool's `carry`), so no device time goes into compiling:
#
#   cmake -S . -B build/gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
#         -DALLOY_CUDA=ON -DALLOY_BUILD_BENCH=ON -DALLOY_BUILD_EXAMPLES=ON
#   cmake --build build/gpu -j2
#   tools/pack_gpu_build.sh build/gpu .gpubin      # then BUILD=.gpubin tools/gpu_session.sh ...
#
# The layout under the folder is the build directory's, so gpu_session.sh and bench/run.sh find
# the same paths; without a CMakeCache.txt there they run the binaries and build nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SRC=${1:?usage: tools/pack_gpu_build.sh BUILD_DIR [DEST]}
DEST=${2:-.gpubin}
rm -rf "$DEST"
for f in tests/cuda/alloy_cuda_tests bench/alloy_bench bench/liballoy_capi.so examples/03_train_lm; do
  if [[ -f $SRC/$f ]]; then
    mkdir -p "$DEST/$(dirname "$f")"
    cp "$SRC/$f" "$DEST/$f"
    strip --strip-unneeded "$DEST/$f" 2>/dev/null || true
  else
    echo "pack_gpu_build: $SRC/$f not built, left out" >&2
  fi
done
git rev-parse HEAD >"$DEST/COMMIT" 2>/dev/null || true
du -sh "$DEST"
