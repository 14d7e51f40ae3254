#!/usr/bin/env bash
# ThreadSanitizer run of the concurrency tests (docs/robustness.md): one Session run from 8
# threads against serial runs, concurrent runs of a control-flow model, and the engine caches
# (in-memory LRU and disk cache) under concurrent builds and stores. Builds test_runtime,
# test_engine_cache and test_robustness with -fsanitize=thread in build-tsan (everything instrumented, -O1) and runs
# the concurrency cases. Not part of scripts/test.sh: the instrumented build takes a long time
# on 2 cores (docs/robustness.md gives the figures).
#   scripts/tsan.sh [gtest filter, default: the concurrency tests]   (BUILD_JOBS: ninja -j, default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
B=build-tsan
FILTER=${1:-'*Concurrent*:*Thread*:*Parallel*'}
if [ ! -f $B/build.ninja ]; then
  cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=None -DKILN_BUILD_BENCH=OFF \
    -DKILN_BUILD_PYTHON=OFF -DCMAKE_CXX_FLAGS="-O1 -g1 -fsanitize=thread -fno-omit-frame-pointer" \
    -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
fi
start=$(date +%s)
ninja -C $B -j "${BUILD_JOBS:-1}" test_runtime test_engine_cache test_robustness
echo "tsan: build took $(( $(date +%s) - start )) s"
# second_deadlock_stack: full reports for lock-order inversions; halt_on_error: any race fails.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
status=0
for t in test_runtime test_engine_cache test_robustness; do
  echo "== $t --gtest_filter=$FILTER"
  start=$(date +%s)
  (cd $B/tests && ./$t --gtest_filter="$FILTER") || status=1
  echo "tsan: $t took $(( $(date +%s) - start )) s"
done
exit $status
