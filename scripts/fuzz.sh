#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang-14, -fsanitize=fuzzer,address,undefined) in
# build-fuzz and runs each for SECONDS_PER_TARGET (default 60) from seeds made out of the
# fixtures (fuzz/make_seeds.py). Prints executions and crashes per target; crash inputs land in
# build-fuzz/crashes/<target>/ (keep them under tests/data/fuzz_regressions/<target>/ once fixed).
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (BUILD_JOBS: ninja -j, default 1)
# Environment: FUZZ_JOBS (parallel fuzzer processes per target, default 1), KILN_FIXTURES_DIR,
# KILN_BIN (the kiln CLI that makes the plan seeds; default build/bin/kiln).
# Exit status 1 when any target found a crash, leak, timeout or out-of-memory.
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
shift || true
ALL="onnx graphdef_pb graphdef_pbtxt tfjs saved_model tensor_bundle npy npz plan calibration_table"
TARGETS=${*:-$ALL}
B=build-fuzz

if [ ! -f $B/build.ninja ]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKILN_FUZZ=ON -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_BENCH=OFF -DKILN_BUILD_PYTHON=OFF \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache >/dev/null || exit 2
fi
ninja -C $B -j "${BUILD_JOBS:-1}" $(for t in $TARGETS; do printf 'fuzz_%s ' "$t"; done) >/dev/null || { echo "fuzz: build failed"; exit 2; }

# Seeds (plans need a kiln CLI that writes SavedModel assets; without one the plan target
# starts from the regression inputs only).
KILN_BIN=${KILN_BIN:-}
if [ -z "$KILN_BIN" ]; then
  for k in build/bin/kiln; do [ -x "$k" ] && KILN_BIN=$k && break; done
fi
rm -rf $B/seeds && python3 fuzz/make_seeds.py $B/seeds ${KILN_BIN:+--kiln "$KILN_BIN"} >/dev/null

JOBS=""; [ "${FUZZ_JOBS:-1}" -gt 1 ] && JOBS="-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS"
status=0
printf '%-18s %8s %12s %10s %8s\n' target seconds executions exec/s crashes
for t in $TARGETS; do
  corpus=$B/corpus/$t; crashes=$B/crashes/$t
  mkdir -p "$corpus" "$crashes"
  seeds=$B/seeds/$t; [ -d "$seeds" ] || seeds=""
  regress=tests/data/fuzz_regressions/$t; [ -d "$regress" ] || regress=""
  log=$B/fuzz_$t.log
  stamp=$B/.fuzz_start_$t; touch "$stamp"
  # -rss_limit_mb: a parser may legitimately hold a 64 MiB tensor (the cap fuzzing runs with,
  # fuzz_targets.cc) several times over; -timeout flags a hang.
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
    $B/fuzz/fuzz_$t -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2560 \
      -max_len=65536 $JOBS -print_final_stats=1 \
      -artifact_prefix="$crashes/" "$corpus" $seeds $regress >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - $(stat -c %Y "$stamp") ))  # a crash ends the run early
  execs=$(grep -h '^stat::number_of_executed_units' "$log" fuzz-*.log 2>/dev/null | awk '{s+=$2} END {print s+0}')
  ncrash=$(find "$crashes" -type f -newer "$stamp" | wc -l)  # this run's crash/leak/timeout/oom files
  rate=$(( execs / (secs > 0 ? secs : 1) ))
  printf '%-18s %8s %12s %10s %8s\n' "$t" "$secs" "$execs" "$rate" "$ncrash"
  if [ $rc -ne 0 ] || [ "$ncrash" -ne 0 ]; then
    status=1
    grep -m3 -E 'ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error' "$log" | sed 's/^/    /'
  fi
  rm -f fuzz-*.log
done
exit $status
