#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up, build, run every test (unit tests per
# module, ONNX conformance, TF fixtures, CLI end to end), then rebuild the robustness tests
# (bad files, bad feeds, threads) under AddressSanitizer + UBSan and run them again.
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-build
if [ -x scripts/fetch_tfjs_models.sh ]; then
  scripts/fetch_tfjs_models.sh || echo "test: TF.js models unavailable; their fixture tests will be skipped"
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_BUILD_PYTHON=ON >/dev/null
ninja -C build
(cd build && ctest --output-on-failure -j2 --timeout 1500)

echo "== CPU engine and INT8 tests on narrower instruction sets (ONEDNN_MAX_CPU_ISA)"
# oneDNN picks other kernels and layouts there (nChw8c, no VNNI, no BF16): bugs that only show
# on users' older CPUs show here. BF16 cases skip themselves where the ISA has no BF16.
for isa in AVX2 AVX512_CORE; do
  for t in test_backend_cpu test_int8 test_precision test_convert; do
    ONEDNN_MAX_CPU_ISA=$isa build/tests/$t --gtest_brief=1 >build/isa-$isa-$t.log 2>&1 ||
      { echo "$t failed with ONEDNN_MAX_CPU_ISA=$isa:"; tail -40 build/isa-$isa-$t.log; exit 1; }
  done
  echo "ONEDNN_MAX_CPU_ISA=$isa: test_backend_cpu test_int8 test_precision test_convert passed"
done

echo "== Python API (python/tests, Debian's /usr/bin/python3)"
PYTHONPATH="$PWD/build/python" /usr/bin/python3 -m pytest -q -p no:cacheprovider python/tests

echo "== robustness tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKILN_SANITIZE=ON -DKILN_WITH_CUDA=OFF >/dev/null
ninja -C build-asan test_io test_runtime test_cli test_convert test_saved_model_convert \
  test_engine_cache test_int8 test_robustness test_serve kiln_cli
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j2 -L robustness)
