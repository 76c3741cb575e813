#!/usr/bin/env bash
# bench/gpu.sh: every benchmark on whatever WebGPU adapter is present, in at most 8 minutes, with
# each benchmark's JSON, its log and a markdown summary written to $OUT (default out/gpu).
# CPU rasterizers (the cpu adapter class: llvmpipe, lavapipe, SwiftShader) run the --quick forms
# and the cpu-class kernels; a GPU runs the full ones and the gpu-class kernels (bench matmul
# times both classes' defaults side by side either way). Each benchmark gets its share of the
# time left and is stopped when it runs past it (its status says so). Deno: $DENO, else `deno` on PATH, else `npx --yes deno@2.9.6` (needs the npm registry).
#   bash bench/gpu.sh            OUT=/some/dir bash bench/gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-out/gpu}"
mkdir -p "$OUT"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
if [ -z "${DENO:-}" ]; then
  if command -v deno >/dev/null 2>&1; then DENO=deno; else DENO="npx --yes deno@2.9.6"; fi
fi
BUDGET="${BUDGET_S:-470}"
start=$(date +%s)

# The adapter and its class as the runtime decides it (runtime/gpu/device.ts adapterClassOf): the
# kernel defaults and the tuner's space follow the class (PHD_ADAPTER_CLASS overrides it for every
# benchmark), and so do the --quick forms here.
probe=$($DENO eval 'import { adapterClassOf } from "./runtime/gpu/device.ts"; const a = await navigator.gpu.requestAdapter(); console.log(a ? `${adapterClassOf(a.info)}\t${a.info.description || a.info.vendor || "unknown"}` : "none")' 2>/dev/null)
if [ "$probe" = "none" ] || [ -z "$probe" ]; then
  echo "error: no WebGPU adapter (see docs/DESIGN.md 5)" >&2
  exit 1
fi
IFS=$'\t' read -r class adapter <<<"$probe"
class="${PHD_ADAPTER_CLASS:-$class}"
echo "adapter: $adapter" | tee "$OUT/adapter.txt"
if [ "$class" = cpu ]; then
  cpu=1
  mode=quick
else
  cpu=0
  mode=full
fi
echo "class: $class (kernel defaults and tuning space)" | tee -a "$OUT/adapter.txt"
echo "mode: $mode" | tee -a "$OUT/adapter.txt"

# name, share of the budget (percent), flags on a CPU adapter, flags on a GPU (on a CPU adapter
# bench matmul compares the two classes' defaults without tuning first: minutes per shape there)
benches=(
  "analysis|5|--runs 3|"
  "matmul|20|--rounds 2 --no-train --no-tune|"
  "attention|25|--quick --L 512|"
  "train|15|--quick|"
  "inference|15|--quick|"
  "scaling|20|--quick --max-train-tokens 2048|"
)
: >"$OUT/status.tsv"
shares_left=100
for row in "${benches[@]}"; do
  IFS='|' read -r name share cpu_flags gpu_flags <<<"$row"
  flags=$([ "$cpu" = 1 ] && echo "$cpu_flags" || echo "$gpu_flags")
  left=$((BUDGET - ($(date +%s) - start)))
  # this benchmark's share of what is left (time a faster one did not use passes on)
  slice=$((left * share / shares_left))
  shares_left=$((shares_left - share))
  if [ "$slice" -lt 5 ]; then
    printf '%s\tskipped (budget spent)\t0\t%s\n' "$name" "$flags" >>"$OUT/status.tsv"
    continue
  fi
  t0=$(date +%s)
  # shellcheck disable=SC2086
  timeout --kill-after=5 "$slice" $DENO task bench "$name" --json $flags >"$OUT/$name.json" 2>"$OUT/$name.log"
  rc=$?
  status=ok
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && status="stopped at its ${slice} s slice"
  [ "$status" = ok ] && [ "$rc" != 0 ] && status="failed (exit $rc)"
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(($(date +%s) - t0))" "$flags" >>"$OUT/status.tsv"
  echo "$name: $status ($(($(date +%s) - t0)) s)"
done
$DENO run -A bench/gpu_summary.ts "$OUT" >"$OUT/summary.md"
echo "total $(($(date +%s) - start)) s; summary: $OUT/summary.md"
