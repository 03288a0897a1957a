#!/usr/bin/env bash
# One call on the GPU machine: build the CUDA tests and the benchmark, run the tests, run
# compute-sanitizer (memcheck, racecheck) on them, run the benchmark; logs under $OUT.
#
#   tools/gpu_session.sh [stages]     stages: any of build,test,tune,bench,parity,sanitize,ncu,sass,demo
#                                     (default: all but ncu, sass and demo)
# BUILD=.gpubin uses binaries built for sm_90 on another machine (tools/pack_gpu_build.sh): no
# device time spent compiling.
# Wheels under .whl/ (bitsandbytes, adam-mini; see docs/benchmarks.md) are installed first.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/alloy-out}
mkdir -p "$OUT"
STAGES=${1:-build,test,tune,bench,parity,sanitize}
BUILD=${BUILD:-build-gpu}  # the tune stage builds build-tune-<variant>: BUILD=build-tune-base
# The commit under test (written before the session: this copy's .git may be stale).
[[ -s bench/results/COMMIT ]] && export ALLOY_COMMIT=$(head -n1 bench/results/COMMIT | tr -d '[:space:]')
[[ -s $BUILD/COMMIT ]] && export ALLOY_COMMIT=$(head -n1 "$BUILD/COMMIT" | tr -d '[:space:]')  # prebuilt
has() { [[ ",$STAGES," == *",$1,"* ]]; }
summary=()
note() { summary+=("$1"); echo "== $1"; }

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >"$OUT/pip.log" 2>&1 && export PYTHONPATH=/tmp/site
  note "wheels: $(ls .whl | tr '\n' ' ')"
fi

if has build && [[ -d $BUILD && ! -f $BUILD/CMakeCache.txt ]]; then
  note "build: $BUILD holds prebuilt binaries (tools/pack_gpu_build.sh): not building"
elif has build; then
  t0=$SECONDS
  cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DALLOY_CUDA=ON \
        -DALLOY_BUILD_BENCH=ON -DALLOY_BUILD_EXAMPLES=${DEMO_BUILD:-OFF} >"$OUT/build.log" 2>&1 \
    && cmake --build $BUILD -j 16 >>"$OUT/build.log" 2>&1  # all targets at once: named targets
                                                        # build one after another (~10 min)
  note "build: rc=$? in $((SECONDS - t0)) s"
fi

if has test; then
  t0=$SECONDS
  timeout 200 $BUILD/tests/cuda/alloy_cuda_tests >"$OUT/cuda_tests.log" 2>&1
  rc=$?
  note "cuda tests: rc=$rc in $((SECONDS - t0)) s: $(grep -E '^\[doctest\] (test cases|assertions)' "$OUT/cuda_tests.log" | tr '\n' ' ')"
fi

if has tune; then
  t0=$SECONDS
  timeout 280 bench/tune.sh /tmp/tune-out >"$OUT/tune.txt" 2>/tmp/tune-out.err
  note "tune: rc=$? in $((SECONDS - t0)) s"
  cat "$OUT/tune.txt"
fi

if has bench; then
  t0=$SECONDS
  IMPLS=${IMPLS:-torch_fused,torch_foreach,mezo_loop,bnb_adamw8bit,bnb_adamw32,adam_mini_official} \
    STEPS=${STEPS:-25} \
    bench/run.sh $BUILD /tmp/bench-out >"$OUT/bench.log" 2>&1
  note "bench: rc=$? in $((SECONDS - t0)) s"
  cp /tmp/bench-out/latest.json /tmp/bench-out/table.txt "$OUT/" 2>/dev/null
  cat /tmp/bench-out/table.txt 2>/dev/null
fi

if has parity; then
  t0=$SECONDS
  timeout 300 python3 bench/int8_parity.py --lib $BUILD/bench/liballoy_capi.so --dtypes fp32,bf16 \
    --out "$OUT/int8_parity.json" >"$OUT/int8_parity.log" 2>&1
  note "int8 parity: rc=$? in $((SECONDS - t0)) s: $(grep -E 'no farther|codebook' "$OUT/int8_parity.log" | tr '\n' ' ')"
  tail -25 "$OUT/int8_parity.log"
  t0=$SECONDS
  timeout 300 python3 bench/adam_mini_parity.py --lib $BUILD/bench/liballoy_capi.so \
    --out "$OUT/adam_mini_parity.json" >"$OUT/adam_mini_parity.log" 2>&1
  note "adam-mini parity: rc=$? in $((SECONDS - t0)) s: $(grep -E 'matches official' "$OUT/adam_mini_parity.log" | tr '\n' ' ')"
  tail -25 "$OUT/adam_mini_parity.log"
fi

if has ncu; then
  # Nsight Compute on the 8-bit AdamW step kernel (flat workload), fp32 and bf16 parameters:
  # occupancy, warp stalls, issue, shared-memory wavefronts. NCU_ONLY picks other rows.
  for dt in fp32 bf16; do
    t0=$SECONDS
    timeout 240 ncu --kernel-name regex:step_kernel --launch-skip 1 --launch-count 1 \
      --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
      --section SchedulerStats --section MemoryWorkloadAnalysis_Tables --section InstructionStats \
      --section ComputeWorkloadAnalysis \
      $BUILD/bench/alloy_bench --only "${NCU_ONLY:-AdamW/Int8Blockwise/PerParameter}" \
      --select flat --dtypes $dt --steps 2 --no-zo --out /tmp/ncu-bench.json \
      >"$OUT/ncu_$dt.txt" 2>&1
    note "ncu $dt: rc=$? in $((SECONDS - t0)) s"
  done
fi

if has demo; then
  # The main demo's GPU configuration (docs/which_composition.md): build with DEMO_BUILD=ON, and
  # carry the corpus (the GPU machine has no network): cp -r /usr/share/games/fortunes .corpus/
  # here, carry [".corpus"].
  t0=$SECONDS
  # docs/which_composition.md's GPU run (162 s on an H100).
  timeout 400 "$BUILD/examples/03_train_lm" --device cuda --corpus "${DEMO_CORPUS:-.corpus/fortunes}" \
    --hidden "${DEMO_HIDDEN:-32768}" --batch "${DEMO_BATCH:-512}" --steps "${DEMO_STEPS:-10000}" \
    --evals 40 --eval-windows 8192 --zo-lr "${DEMO_ZO_LR:-2e-6}" \
    --out "$OUT/demo" >"$OUT/demo.log" 2>&1
  note "demo: rc=$? in $((SECONDS - t0)) s: $(tail -1 "$OUT/demo.log")"
  tail -16 "$OUT/demo.log"
fi

if has sass; then
  # SASS of the 8-bit AdamW step kernels (for instruction counts per element).
  cuobjdump -sass "$BUILD/bench/alloy_bench" | c++filt | python3 -c '
import sys
keep = False
for line in sys.stdin:
    if "Function :" in line:
        keep = "step_kernel" in line and "Int8Blockwise" in line and "AdamW" in line and "PerBlock" not in line
    if keep:
        sys.stdout.write(line)
' >"$OUT/sass_int8.txt"
  note "sass: $(grep -c 'Function :' "$OUT/sass_int8.txt") kernels, $(wc -l <"$OUT/sass_int8.txt") lines"
fi

if has sanitize; then
  # memcheck: the executor tests run every kernel instantiation (rules x formats x dtype pairs x
  # alignments); the reference tests repeat them over 100 small steps and are left out here.
  # racecheck (about 100x slower) only where kernels share memory between threads: the 8-bit
  # formats' staged tables and PerBlock's statistics tree (224-260 s on an H100, 2026-11-26).
  declare -A SUBS=(
    [memcheck]='-tc=CUDA equals*,CUDA results*,unaligned*,state:*,many*,CUDA graph*,non-default*,spsa*,Int8*,PerBlock*'
    [racecheck]='-tc=CUDA equals the host executor bit for bit: Int8*,PerBlock*')
  for tool in memcheck racecheck; do
    t0=$SECONDS
    timeout 330 compute-sanitizer --tool $tool --error-exitcode 9 \
      $BUILD/tests/cuda/alloy_cuda_tests "${SUBS[$tool]}" >"$OUT/sanitize_$tool.log" 2>&1
    rc=$?
    note "compute-sanitizer $tool: rc=$rc in $((SECONDS - t0)) s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|test cases' "$OUT/sanitize_$tool.log" | tr '\n' ' ')"
  done
fi

echo
printf '%s\n' "${summary[@]}"
