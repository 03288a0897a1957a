#!/usr/bin/env bash
# Sweep the sm_90 launch tuning of the step kernel (include/alloy/exec/cuda.cuh): builds
# alloy_bench once per variant (compile-time macros) and times alloy's rows with each.
#
#   bench/tune.sh [out_dir]       env: VARIANTS ("name:-DMACRO=V -D..." entries, ;-separated),
#                                 ONLY (time only compositions containing this text),
#                                 BLOCK_ONLY=1 (compile only the 8-bit rows: a faster build)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-/tmp/tune-out}
mkdir -p "$OUT"
VARIANTS=${VARIANTS:-"base:;u4_4x8_2_t512:-DALLOY_SM90_THREADS=512;u4_2x8_1:-DALLOY_SM90_UNROLL_4=2 -DALLOY_SM90_UNROLL_8=1;u4_8x8_4:-DALLOY_SM90_UNROLL_4=8 -DALLOY_SM90_UNROLL_8=4;nohint:-DALLOY_STREAMING_CACHE_HINTS=0"}
IFS=';' read -ra LIST <<<"$VARIANTS"
pids=()
for v in "${LIST[@]}"; do
  name=${v%%:*}; flags=${v#*:}
  ( cmake -S . -B "build-tune-$name" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
      -DALLOY_BUILD_BENCH=ON -DALLOY_BUILD_TESTS=OFF -DALLOY_BUILD_EXAMPLES=OFF \
      "-DCMAKE_CUDA_FLAGS=$flags${BLOCK_ONLY:+ -DALLOY_BENCH_BLOCK_FORMATS_ONLY}" >"$OUT/build-$name.log" 2>&1 \
    && cmake --build "build-tune-$name" --target alloy_bench -j 4 >>"$OUT/build-$name.log" 2>&1 ) &
  pids+=($!)
done
wait "${pids[@]}"
for v in "${LIST[@]}"; do
  name=${v%%:*}
  "build-tune-$name/bench/alloy_bench" --workloads bench/workloads.json --steps "${STEPS:-15}" \
    --out "$OUT/tune-$name.json" ${ONLY:+--only "$ONLY"} 2>>"$OUT/tune.log" \
    || echo "variant $name failed" >&2
done
python3 - "$OUT" "${LIST[@]}" <<'PY'
import json, sys, os
out = sys.argv[1]
names = [v.split(':', 1)[0] for v in sys.argv[2:]]
res = {}
for n in names:
    p = os.path.join(out, f'tune-{n}.json')
    if os.path.exists(p):
        for r in json.load(open(p))['rows']:
            if r['impl'] == 'alloy':
                comp = r['composition'].replace('/Backprop', '').replace('/PerParameter', '')
                res.setdefault((comp, r['workload'], r['dtype']), {})[n] = r['fraction_of_copy']
print('fraction of copy bandwidth per tuning variant (alloy rows, median step)')
print(f"{'composition':<30} {'workload':<8} {'dtype':<5} " + ' '.join(f'{n:>14}' for n in names))
for k, v in sorted(res.items()):
    print(f'{k[0]:<30} {k[1]:<8} {k[2]:<5} ' + ' '.join(f"{v.get(n, float('nan')):>14.3f}" for n in names))
PY
