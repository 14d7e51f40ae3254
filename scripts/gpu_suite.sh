#!/usr/bin/env bash
# The CUDA backend's whole GPU suite in one go, on a machine with an NVIDIA GPU, the CUDA
# toolkit, cuDNN and PyTorch (the lent H100/H200 machines): builds kiln with the CUDA backend,
# runs the per-op checks against the reference kernels (every precision), exports the bench
# models with PyTorch if missing, converts and checks them end to end, times them on the GPU,
# times PyTorch eager / torch.compile on the same models, and writes the table.
#
#   OUT=/tmp/gpu scripts/gpu_suite.sh                 # everything
#   STAGES=build,test scripts/gpu_suite.sh            # a subset: build test models kiln torch table
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
STAGES=${STAGES:-build,test,models,kiln,torch,table}
ITERS=${ITERS:-50}
KILN_CASES=${KILN_CASES:-"resnet50:fp16:1 resnet50:fp16:128 resnet50:fp32:128 bert_base:fp16:128 bert_base:fp32:128"}
TORCH_CASES=${TORCH_CASES:-"resnet50:1,resnet50:128,bert_base:128"}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$DNNL/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
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
} 2>&1 | tee -a "$OUT/suite.log"

if has build; then
  log "build"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$DNNL" \
    -DKILN_BUILD_BENCH=ON >"$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
  grep "kiln:" "$OUT/cmake.log" | tee -a "$OUT/suite.log"
  ninja -C "$BUILD" -j"$(nproc)" test_backend_cuda kiln_cuda_suite kiln_cli >"$OUT/build.log" 2>&1 ||
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
  python3 "$ROOT/scripts/gpu_export_models.py" --only resnet50,bert_base 2>&1 | tail -4 | tee -a "$OUT/suite.log"
fi

if has kiln; then
  log "kiln"
  for c in $KILN_CASES; do
    IFS=: read -r m p b <<<"$c"
    if [[ $m == bert_base ]]; then args=(--input input_ids --dims 128 --int-high 30522); else args=(--input input --dims 3,224,224); fi
    "$BUILD/bin/kiln_cuda_suite" --model "$ROOT/bench/models/$m.onnx" "${args[@]}" --precision "$p" \
      --batch "$b" --iters "$ITERS" --label "$m" --tsv "$OUT/kiln.tsv" --profile "$OUT/profile.tsv" 2>>"$OUT/kiln_stderr.log" | tee -a "$OUT/suite.log"
  done
fi

if has torch; then
  log "torch"
  python3 "$ROOT/bench/torch_gpu_bench.py" --cases "$TORCH_CASES" --iters "$ITERS" \
    2>>"$OUT/torch_stderr.log" | tee -a "$OUT/torch.tsv" | tee -a "$OUT/suite.log"
fi

if has table; then
  log "table"
  {
    echo "| model | precision | batch | converted nodes | rel L2 vs reference | kiln device ms (graph) | kiln items/s | kiln host-to-host ms |"
    echo "|---|---|---|---|---|---|---|---|"
    [[ -f $OUT/kiln.tsv ]] && awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s (%s) | %s | %s |\n", $1, $2, $3, $4, $6, $7, $8, $9, $10}' "$OUT/kiln.tsv"
    echo
    echo "| model | batch | PyTorch variant | ms | items/s |"
    echo "|---|---|---|---|---|"
    [[ -f $OUT/torch.tsv ]] && awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}' "$OUT/torch.tsv"
  } >"$OUT/table.md"
  cat "$OUT/table.md"
fi
