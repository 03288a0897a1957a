#!/usr/bin/env bash
# One command for the whole benchmark: build alloy_bench, run it, run the torch anchors,
# merge into bench/results/latest.json (and a copy in OUT_DIR), print the table last.
#
#   bench/run.sh [build_dir] [out_dir]
#
# Env overrides: STEPS (timed steps, default 25), WORKLOADS (default flat,llama1b),
# DTYPES (default fp32,bf16), IMPLS (anchors, default torch_fused,torch_foreach),
# ALLOY_BENCH_ARGS (extra arguments for alloy_bench, word-split).
# If the alloy stage (build or run) fails, the anchors still run and the script exits 1 at the end.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${1:-build-bench}
OUT_DIR=${2:-$BUILD/bench-out}
mkdir -p "$OUT_DIR"

STEPS_ARG=${STEPS:-25}
WORKLOADS_ARG=${WORKLOADS:-flat,llama1b}
DTYPES_ARG=${DTYPES:-fp32,bf16}
IMPLS_ARG=${IMPLS:-torch_fused,torch_foreach}
COMMAND="STEPS=$STEPS_ARG WORKLOADS=$WORKLOADS_ARG DTYPES=$DTYPES_ARG bench/run.sh $*"

# ALLOY_COMMIT names the commit measured (tools/gpu_session.sh sets it from bench/results/COMMIT:
# the GPU machine's copy of the tree can carry a stale .git); else git, else that file.
if [[ -n ${ALLOY_COMMIT:-} ]]; then COMMIT=$ALLOY_COMMIT
elif [[ -s $BUILD/COMMIT && ! -f $BUILD/CMakeCache.txt ]]; then  # prebuilt: the commit it was built from
  COMMIT=$(head -n1 "$BUILD/COMMIT" | tr -d '[:space:]')
elif COMMIT=$(git rev-parse --verify -q HEAD 2>/dev/null); then :
elif [[ -s bench/results/COMMIT ]]; then COMMIT=$(head -n1 bench/results/COMMIT | tr -d '[:space:]')
else COMMIT=unknown
fi

log() { echo "[run.sh] $*" >&2; }
status=0

# (1) Build. Tests/examples are off: only the benchmark target is needed here.
BIN="$BUILD/bench/alloy_bench"
if [[ -x $BIN && ! -f $BUILD/CMakeCache.txt ]]; then
  log "prebuilt $BIN (tools/pack_gpu_build.sh): not building"
  built=1
elif { [[ -f "$BUILD/CMakeCache.txt" ]] || cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
       -DCMAKE_CUDA_ARCHITECTURES=90 -DALLOY_BUILD_BENCH=ON \
       -DALLOY_BUILD_TESTS=OFF -DALLOY_BUILD_EXAMPLES=OFF; } 2>&1 | tee "$OUT_DIR/build.log" >&2 \
   && cmake --build "$BUILD" --target alloy_bench -j 2>&1 | tee -a "$OUT_DIR/build.log" >&2; then
  built=1
else
  log "build FAILED (see $OUT_DIR/build.log); running anchors only"
  built=0; status=1
fi

# (2a) alloy rows first. Selection flags are passed only when overridden.
rm -f "$OUT_DIR/alloy.json" "$OUT_DIR/anchors.json"
if [[ $built == 1 ]]; then
  ALLOY_ARGS=(--workloads bench/workloads.json --out "$OUT_DIR/alloy.json")
  [[ -n ${STEPS:-} ]] && ALLOY_ARGS+=(--steps "$STEPS")
  [[ -n ${WORKLOADS:-} ]] && ALLOY_ARGS+=(--select "$WORKLOADS")
  [[ -n ${DTYPES:-} ]] && ALLOY_ARGS+=(--dtypes "$DTYPES")
  # shellcheck disable=SC2206
  [[ -n ${ALLOY_BENCH_ARGS:-} ]] && ALLOY_ARGS+=($ALLOY_BENCH_ARGS)
  log "$BIN ${ALLOY_ARGS[*]}"
  if ! "$BIN" "${ALLOY_ARGS[@]}" 2>&1 | tee "$OUT_DIR/alloy.log" >&2; then
    log "alloy_bench FAILED (see $OUT_DIR/alloy.log)"; status=1
  fi
fi

# (2b) Anchor rows after alloy's.
log "anchors: $WORKLOADS_ARG / $DTYPES_ARG / $IMPLS_ARG, $STEPS_ARG steps"
if ! python3 bench/anchors.py --workloads "$WORKLOADS_ARG" --dtypes "$DTYPES_ARG" --impls "$IMPLS_ARG" \
       --steps "$STEPS_ARG" --out "$OUT_DIR/anchors.json" 2>&1 | tee "$OUT_DIR/anchors.log" >&2; then
  log "anchors FAILED (see $OUT_DIR/anchors.log)"; status=1
fi

# (3) Merge, plot a copy of the chart into OUT_DIR, then (4) print the table last.
if ! python3 bench/merge.py --alloy "$OUT_DIR/alloy.json" --anchors "$OUT_DIR/anchors.json" \
       --out "$OUT_DIR/latest.json" --commit "$COMMIT" --command "$COMMAND" >"$OUT_DIR/table.txt"; then
  log "merge FAILED: no results"; exit 1
fi
mkdir -p bench/results
cp "$OUT_DIR/latest.json" bench/results/latest.json
python3 bench/plot.py "$OUT_DIR/latest.json" "$OUT_DIR/benchmarks.svg" || log "plot failed"
cat "$OUT_DIR/table.txt"
exit $status
