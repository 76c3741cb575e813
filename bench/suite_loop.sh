#!/usr/bin/env bash
# bench/suite_loop.sh: the test suite back to back, N times, one line per run (exit status, seconds,
# load average at its end, the runner's summary) to LOG; each run's whole output beside it as
# LOG.runI.out. The default pass is CI's Vulkan command (the whole suite; f16, timestamp queries
# and subgroups required); --gl is the GL pass CI dropped (`deno task test:gl`: the kernel, model
# and inference tests, one file at a time; docs/TESTING.md). For the figure "N of N under load" run
# two loops side by side in two clones, each the other's load. Exit 134 is the heap-corruption
# abort at exit (docs/TESTING.md).
#   bash bench/suite_loop.sh [--gl] [N=30] [LOG=out/suite_loop.log]
set -uo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
DENO="${DENO:-npx --yes deno@2.9.6}"
pass=vulkan
if [ "${1:-}" = "--gl" ]; then pass=gl; shift; fi
case "${1:-30}" in
  '' | *[!0-9]* | 0)
    echo "error: N must be a positive whole number of runs, got '${1:-}' (bash bench/suite_loop.sh [--gl] [N] [LOG])" >&2
    exit 2
    ;;
esac
n="${1:-30}"
log="${2:-out/suite_loop.log}"
mkdir -p "$(dirname "$log")"
echo "# $pass pass, $n runs, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, started $(date -u +%FT%TZ)" >"$log"
failed=0
for i in $(seq "$n"); do
  out="$log.run$i.out"
  s=$(date +%s)
  if [ "$pass" = vulkan ]; then
    DENO_WEBGPU_BACKEND=vulkan PHD_REQUIRE_F16=1 PHD_REQUIRE_TIMESTAMPS=1 PHD_REQUIRE_SUBGROUPS=1 \
      NO_COLOR=1 $DENO task test >"$out" 2>&1
  else
    NO_COLOR=1 $DENO task test:gl >"$out" 2>&1
  fi
  rc=$?
  [ "$rc" = 0 ] || failed=$((failed + 1))
  line="run $i rc=$rc secs=$(($(date +%s) - s)) load=$(cut -d' ' -f1-3 /proc/loadavg) $(grep -E '^(ok|FAILED) \|' "$out" | tail -1)"
  echo "$line" | tee -a "$log"
done
echo "# $((n - failed)) of $n passed" | tee -a "$log"
[ "$failed" = 0 ]
