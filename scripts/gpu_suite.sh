#!/usr/bin/env bash
# The CUDA backend's whole GPU suite in one go, on a machine with an NVIDIA GPU, the CUDA
# toolkit, cuDNN and PyTorch (the lent H100/H200 machines): builds kiln with the CUDA backend,
# runs the per-op checks against the reference kernels (every precision), exports the bench
# models with PyTorch if missing, converts and checks them end to end, times them on the GPU,
# times PyTorch eager / torch.compile on the same models, and writes the table.
#
#   OUT=/tmp/gpu scripts/gpu_suite.sh                 # everything
#   STAGES=build,test scripts/gpu_suite.sh            # a subset: build test models kiln torch probe table
#   CONV_APIS="graph legacy" scripts/gpu_suite.sh     # each kiln case per convolution path
#                                                     # (KILN_CUDA_CONV; label gets "-legacy")
#   STAGES=probe scripts/gpu_suite.sh                 # ResNet-50's convs FP16 vs INT8 (cuDNN graph)
#   LABEL_SUFFIX=-off KILN_SOME_SWITCH=0 ...          # an A/B variant of the kiln cases (label + suffix)
#   CUDNN_FROM_TORCH=1 ...                            # run against PyTorch's (newer) cuDNN 9 wheel
#                                                     # instead of the system one (labels get "-cudnn<v>")
#
# oneDNN (the CPU backend, whose lowering the CUDA backend shares) is not installed on those
# machines: DNNL points at Debian's libdnnl unpacked with dpkg -x (default .deps/dnnl/usr).
# Results: $OUT/suite.log, $OUT/test_backend_cuda.log, $OUT/kiln.tsv, $OUT/torch.tsv,
# $OUT/table.md.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/gpu_suite_out}
BUILD=${BUILD:-$ROOT/build-gpu}
DNNL=${DNNL:-$ROOT/.deps/dnnl/usr}
STAGES=${STAGES:-build,test,models,kiln,torch,probe,table}
CONV_APIS=${CONV_APIS:-auto}
MODELS=${MODELS:-resnet50,bert_base}
TARGETS=${TARGETS:-test_backend_cuda kiln_cuda_suite kiln_cli}
PROBE_BATCHES=${PROBE_BATCHES:-128}
ITERS=${ITERS:-50}
KILN_CASES=${KILN_CASES:-"resnet50:fp16:1 resnet50:fp16:128 resnet50:int8:1 resnet50:int8:128 resnet50:fp32:128 bert_base:fp16:128 bert_base:fp32:128"}
TORCH_CASES=${TORCH_CASES:-"resnet50:1,resnet50:128,bert_base:128"}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$DNNL/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
SUFFIX=
if [[ ${CUDNN_FROM_TORCH:-0} == 1 ]]; then
  tdir=$(python3 -c "import nvidia.cudnn as m, os; print(os.path.join(list(m.__path__)[0], 'lib'))")
  export LD_LIBRARY_PATH="$tdir:$LD_LIBRARY_PATH"
  SUFFIX=-cudnn$(python3 -c "import torch; print(torch.backends.cudnn.version())")
fi
has() { [[ ",$STAGES," == *",$1,"* ]]; }
log() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$OUT/suite.log"; }

log "machine"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  nvcc --version | tail -1
  grep -h "define CUDNN_MAJOR\|define CUDNN_MINOR\|define CUDNN_PATCHLEVEL" \
    /usr/include/x86_64-linux-gnu/cudnn_version*.h /usr/include/cudnn_version*.h 2>/dev/null | awk '{print $2"="$3}' | tr '\n' ' '
  echo
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
  nproc; uptime
  lscpu | grep -E "Model name|Flags" | grep -o -E "Model name.*|amx[a-z0-9_]*|avx512_bf16|avx512_vnni" | sort -u | tr '\n' ' '
  echo
} 2>&1 | tee -a "$OUT/suite.log"

if has build; then
  log "build"
  # kiln serve needs cpp-httplib and gRPC, which the GPU machines lack: build without it (the
  # rest of kiln, the CLI included, does not need them).
  extra=()
  if ! pkg-config --exists cpp-httplib grpc++ 2>/dev/null; then
    extra+=(-DKILN_BUILD_SERVE=OFF)
    echo "serve dependencies missing: configured with -DKILN_BUILD_SERVE=OFF" | tee -a "$OUT/suite.log"
  fi
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$DNNL" \
    -DKILN_BUILD_BENCH=ON "${extra[@]}" >"$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
  grep "kiln:" "$OUT/cmake.log" | tee -a "$OUT/suite.log"
  # shellcheck disable=SC2086
  ninja -C "$BUILD" -j"$(nproc)" $TARGETS >"$OUT/build.log" 2>&1 ||
    { grep -E "error|FAILED" -A5 "$OUT/build.log" | head -60; exit 1; }
  grep -c "warning" "$OUT/build.log" | sed 's/^/build warnings: /' | tee -a "$OUT/suite.log"
fi

if has test; then
  log "test_backend_cuda"
  "$BUILD/tests/test_backend_cuda" --gtest_brief=1 >"$OUT/test_backend_cuda.log" 2>&1
  echo "exit $?" >>"$OUT/test_backend_cuda.log"
  grep -E "FAILED|PASSED|SKIPPED|tests ran|exit" "$OUT/test_backend_cuda.log" | tail -40 | tee -a "$OUT/suite.log"
fi

if has models; then
  log "models"
  python3 "$ROOT/scripts/gpu_export_models.py" --only "$MODELS" 2>&1 | tail -4 | tee -a "$OUT/suite.log"
fi

if has kiln; then
  log "kiln"
  for c in $KILN_CASES; do
    IFS=: read -r m p b <<<"$c"
    if [[ $m == bert_base ]]; then args=(--input input_ids --dims 128 --int-high 30522); else args=(--input input --dims 3,224,224); fi
    for api in $CONV_APIS; do
      label=$m$SUFFIX${LABEL_SUFFIX:-}
      [[ $api != auto ]] && label=$label-$api
      KILN_CUDA_CONV=$api "$BUILD/bin/kiln_cuda_suite" --model "$ROOT/bench/models/$m.onnx" "${args[@]}" --precision "$p" \
        --batch "$b" --iters "$ITERS" --label "$label" --tsv "$OUT/kiln.tsv" --profile "$OUT/profile.tsv" 2>>"$OUT/kiln_stderr.log" | tee -a "$OUT/suite.log"
    done
  done
fi

if has torch; then
  log "torch"
  python3 "$ROOT/bench/torch_gpu_bench.py" --cases "$TORCH_CASES" --iters "$ITERS" \
    2>>"$OUT/torch_stderr.log" | tee -a "$OUT/torch.tsv" | tee -a "$OUT/suite.log"
fi

if has probe; then
  log "probe (ResNet-50 convolutions, cuDNN graph API, FP16 vs INT8)"
  CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc)")")}
  PB=$(mktemp -d)
  nvcc -O2 -std=c++17 -arch=sm_90 -c "$ROOT/src/backends/cuda/kernels.cu" -I"$ROOT/src" -o "$PB/kernels.o" &&
    g++ -O2 -std=c++20 "$ROOT/bench/cuda_int8_probe.cc" "$ROOT/src/backends/cuda/cudnn_graph.cc" \
      "$ROOT/src/core/status.cc" "$PB/kernels.o" -I"$ROOT/include" -I"$ROOT/src" -I"$CUDA_HOME/include" \
      -I/usr/include/x86_64-linux-gnu -L"$CUDA_HOME/lib64" -lcudnn -lcudart -o "$PB/int8_probe" &&
    for b in $PROBE_BATCHES; do echo "cuDNN libraries: ${SUFFIX:-system}" | tee -a "$OUT/probe.log"; "$PB/int8_probe" "$b" ${PROBE_MODE:-} 2>&1 | tee -a "$OUT/probe.log" | tee -a "$OUT/suite.log"; done
  rm -rf "$PB"
fi

if has table; then
  log "table"
  {
    echo "| model | precision | batch | converted nodes | rel L2 vs reference | kiln device ms (graph) | kiln items/s | kiln host-to-host ms | kiln device-resident I/O ms |"
    echo "|---|---|---|---|---|---|---|---|---|"
    [[ -f $OUT/kiln.tsv ]] && awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s (%s) | %s | %s | %s |\n", $1, $2, $3, $4, $6, $7, $8, $9, $10, $11}' "$OUT/kiln.tsv"
    echo
    echo "| model | batch | PyTorch variant | ms | items/s |"
    echo "|---|---|---|---|---|"
    [[ -f $OUT/torch.tsv ]] && awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}' "$OUT/torch.tsv"
  } >"$OUT/table.md"
  cat "$OUT/table.md"
fi
