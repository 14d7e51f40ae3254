#!/usr/bin/env bash
# Reduced-precision CPU numbers (issue 5) on a machine whose CPU has AMX (the lent GPU machines'
# Xeon hosts; the development machine has none), in one go: builds kiln's CLI (CPU backend only,
# no serve), exports the bench models with PyTorch if missing, makes an INT8 calibration table,
# and times, on the same 2 cores (taskset) with 2 threads each, alternating:
#   kiln FP32 / BF16 / INT8 (`kiln bench`), ONNX Runtime FP32 (its Python package, all graph
#   optimizations, 2 intra-op threads), ONNX Runtime INT8 on a Q/DQ ResNet-50 that ORT's own
#   quantizer builds from kiln's calibration ranges (bench/make_ort_qdq.py), PyTorch BF16
#   (bench/torch_bench.py --bf16: TorchScript + channels-last + BF16 autocast) and PyTorch INT8
#   (--int8: FX static quantization, x86 backend, same calibration batches; BERT: dynamic
#   quantization of its Linear layers); TORCH_PRECISIONS="bf16 int8 fp32" adds its FP32.
# Writes $OUT/amx.tsv (runtime, model, precision, batch, median ms, round) and $OUT/table.md:
# per runtime the best of the ROUNDS round medians (STAT=median: their median). The lent hosts
# are shared VMs whose neighbours slow a whole round of one runtime by up to 2.5x (seen: kiln
# INT8 9.1 then 6.0 ms, ORT FP32 368 then 295 ms); the best round is each runtime undisturbed.
# With PROFILE=1 also `kiln inspect --profile` of the INT8 and BF16 engines (batch 1 and 8).
#
#   OUT=/tmp/amx scripts/cpu_amx_bench.sh
#
# Calibration data for INT8 here is random (normal images, uniform token ids): the numbers are
# speeds, not accuracy (docs/int8.md has the accuracy on real inputs).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/amx_out}
BUILD=${BUILD:-$ROOT/build-amx}
DNNL=${DNNL:-$ROOT/.deps/dnnl/usr}
CPUS=${CPUS:-2,3}
ITERS=${ITERS:-20}
ROUNDS=${ROUNDS:-3}
STAT=${STAT:-min}
TORCH_PRECISIONS=${TORCH_PRECISIONS:-bf16 int8}
CASES=${CASES:-"resnet50:1 resnet50:8 bert_base:1"}
PY=${PY:-python3}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$DNNL/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
log() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$OUT/amx.log"; }
pin() { taskset -c "$CPUS" "$@"; }

log "machine"
{
  lscpu | grep -E "Model name"
  grep -o -E "amx[a-z0-9_]*|avx512_bf16|avx512_vnni|avx512_fp16" /proc/cpuinfo | sort -u | tr '\n' ' '
  echo
  $PY -c "import onnxruntime as o, torch; print('onnxruntime', o.__version__, 'torch', torch.__version__)"
  uptime
} 2>&1 | tee -a "$OUT/amx.log"

log "build"
extra=()
pkg-config --exists cpp-httplib grpc++ 2>/dev/null || extra+=(-DKILN_BUILD_SERVE=OFF)
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$DNNL" \
  -DKILN_WITH_CUDA=OFF -DKILN_BUILD_TESTS=OFF "${extra[@]}" >"$OUT/cmake.log" 2>&1 ||
  { tail -30 "$OUT/cmake.log"; exit 1; }
ninja -C "$BUILD" -j"$(nproc)" kiln_cli >"$OUT/build.log" 2>&1 ||
  { grep -E "error|FAILED" -A5 "$OUT/build.log" | head -40; exit 1; }
KILN=$BUILD/bin/kiln

log "models"
[[ -f $ROOT/bench/models/resnet50.onnx && -f $ROOT/bench/models/bert_base.onnx ]] ||
  $PY "$ROOT/scripts/gpu_export_models.py" --only resnet50,bert_base 2>&1 | tail -3 | tee -a "$OUT/amx.log"

log "inputs and calibration"
W=$OUT/work
mkdir -p "$W/calib_resnet50" "$W/calib_bert_base"
$PY - "$W" <<'EOF'
import sys, numpy as np
w = sys.argv[1]
rng = np.random.default_rng(0)
for b in (1, 8):
    np.save(f"{w}/resnet50_b{b}.npy", rng.standard_normal((b, 3, 224, 224)).astype(np.float32))
np.save(f"{w}/bert_base_b1.npy", rng.integers(0, 30522, (1, 128)).astype(np.int64))
for i in range(8):
    np.save(f"{w}/calib_resnet50/input_{i}.npy", rng.standard_normal((4, 3, 224, 224)).astype(np.float32))
    np.save(f"{w}/calib_bert_base/input_ids_{i}.npy", rng.integers(0, 30522, (4, 128)).astype(np.int64))
EOF
for m in resnet50 bert_base; do
  pin "$KILN" convert "$ROOT/bench/models/$m.onnx" -o "$W/$m.int8.onnx" --precision int8 \
    --calib-data "$W/calib_$m" --calib-cache "$W/$m.calib" --max-batch-size 8 >"$OUT/convert_$m.int8.log" 2>&1 ||
    tail -5 "$OUT/convert_$m.int8.log"
  for p in bf16 int8; do
    args=(--precision "$p" --max-batch-size 8)
    [[ $p == int8 ]] && args+=(--calib-cache "$W/$m.calib")
    pin "$KILN" convert "$ROOT/bench/models/$m.onnx" -o "$W/$m.$p.onnx" "${args[@]}" >/dev/null 2>&1
    "$KILN" inspect "$W/$m.$p.onnx" >"$OUT/inspect_$m.$p.txt" 2>&1
    echo "$m $p layer implementations: $(grep -o -E '(brg|jit|gemm|brdgmm)[a-z0-9_:]*' "$OUT/inspect_$m.$p.txt" | sort | uniq -c | tr '\n' ' ')" | tee -a "$OUT/amx.log"
  done
done
# ORT's INT8 peer: its own quantizer, kiln's ranges (the issue: "from the same calibration ranges").
pin $PY "$ROOT/bench/make_ort_qdq.py" "$ROOT/bench/models/resnet50.onnx" "$W/calib_resnet50" \
  "$W/resnet50.qdq.onnx" --kiln-table "$W/resnet50.calib" 2>&1 | grep -v -i warning | tail -3 | tee -a "$OUT/amx.log"

ort_bench() {  # model input iters
  pin $PY - "$@" <<'EOF'
import sys, time, numpy as np, onnxruntime as ort
model, inp, iters = sys.argv[1], sys.argv[2], int(sys.argv[3])
so = ort.SessionOptions()
so.intra_op_num_threads = 2
so.inter_op_num_threads = 1
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
feed = {s.get_inputs()[0].name: np.load(inp)}
for _ in range(3): s.run(None, feed)
t = []
for _ in range(iters):
    t0 = time.perf_counter(); s.run(None, feed); t.append((time.perf_counter() - t0) * 1e3)
print(f"median {np.median(t):.3f}")
EOF
}

log "timing (rounds alternate the runtimes)"
: >"$OUT/amx.tsv"
for r in $(seq 1 "$ROUNDS"); do
  for c in $CASES; do
    IFS=: read -r m b <<<"$c"
    in=$W/${m}_b$b.npy
    for p in fp32 bf16 int8; do
      args=(--precision "$p" --batch "$b" --max-batch-size 8 --threads 2 --iterations "$ITERS" --input "$(
        [[ $m == bert_base ]] && echo input_ids || echo input)=$in")
      [[ $p == int8 ]] && args+=(--calib-cache "$W/$m.calib")
      ms=$(OMP_NUM_THREADS=2 pin "$KILN" bench "$ROOT/bench/models/$m.onnx" "${args[@]}" 2>&1 | awk '/^latency/ {print $7}')
      printf 'kiln\t%s\t%s\t%s\t%s\t%s\n' "$m" "$p" "$b" "${ms:-fail}" "$r" | tee -a "$OUT/amx.tsv"
    done
    ms=$(ort_bench "$ROOT/bench/models/$m.onnx" "$in" "$ITERS" 2>>"$OUT/ort_stderr.log" | awk '{print $2}')
    printf 'ort\t%s\tfp32\t%s\t%s\t%s\n' "$m" "$b" "${ms:-fail}" "$r" | tee -a "$OUT/amx.tsv"
    if [[ -f $W/$m.qdq.onnx ]]; then
      ms=$(ort_bench "$W/$m.qdq.onnx" "$in" "$ITERS" 2>>"$OUT/ort_stderr.log" | awk '{print $2}')
      printf 'ort\t%s\tint8\t%s\t%s\t%s\n' "$m" "$b" "${ms:-fail}" "$r" | tee -a "$OUT/amx.tsv"
    fi
    for tp in $TORCH_PRECISIONS; do
      targs=(--input "$in" --iterations "$ITERS" --threads 2)
      [[ $tp == bf16 ]] && targs+=(--bf16)
      [[ $tp == int8 ]] && targs+=(--int8 --calib "$W/calib_$m")
      ms=$(pin $PY "$ROOT/bench/torch_bench.py" "$m" "${targs[@]}" 2>>"$OUT/torch_stderr.log" | awk '/^latency/ {print $7}')
      printf 'torch\t%s\t%s\t%s\t%s\t%s\n' "$m" "$tp" "$b" "${ms:-fail}" "$r" | tee -a "$OUT/amx.tsv"
    done
  done
done

if [[ ${PROFILE:-0} == 1 ]]; then
  log "per-layer profiles"
  for b in 1 8; do
    for p in int8 bf16; do
      args=(--precision "$p" --max-batch-size "$b")
      [[ $p == int8 ]] && args+=(--calib-cache "$W/resnet50.calib")
      pin "$KILN" convert "$ROOT/bench/models/resnet50.onnx" -o "$W/prof.onnx" "${args[@]}" >/dev/null 2>&1
      OMP_NUM_THREADS=2 pin "$KILN" inspect "$W/prof.onnx" --profile >"$OUT/profile_resnet50_${p}_b$b.txt" 2>&1
    done
  done
fi

log "table ($STAT of $ROUNDS rounds)"
STAT=$STAT $PY - "$OUT/amx.tsv" <<'EOF' | tee "$OUT/table.md"
import os, sys, collections, statistics
rows = collections.defaultdict(list)
stat = min if os.environ.get("STAT", "min") == "min" else statistics.median
for line in open(sys.argv[1]):
    rt, m, p, b, ms, _ = line.rstrip("\n").split("\t")
    if ms != "fail":
        rows[(m, int(b), rt, p)].append(float(ms))
med = {k: stat(v) for k, v in rows.items()}
print("| model | batch | kiln FP32 | kiln BF16 | kiln INT8 | ORT FP32 | ORT INT8 (Q/DQ) | PyTorch BF16 | PyTorch INT8 | BF16 vs ORT | INT8 vs ORT | INT8 vs ORT Q/DQ | best kiln vs PyTorch best |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (m, b) in sorted({(k[0], k[1]) for k in med}):
    g = lambda rt, p: med.get((m, b, rt, p))
    f = lambda v: f"{v:.2f}" if v else "—"
    ort = g("ort", "fp32")
    kb, ki = g("kiln", "bf16"), g("kiln", "int8")
    tb = [v for v in (g("torch", "bf16"), g("torch", "int8"), g("torch", "fp32")) if v]
    kbest = min([v for v in (kb, ki) if v] or [0]) or None
    r = lambda a, c: f"{c / a:.2f}x" if a and c else "—"
    print(f"| {m} | {b} | {f(g('kiln','fp32'))} | {f(kb)} | {f(ki)} | {f(ort)} | {f(g('ort','int8'))} | "
          f"{f(g('torch','bf16'))} | {f(g('torch','int8'))} | {r(kb, ort)} | {r(ki, ort)} | "
          f"{r(ki, g('ort','int8'))} | {r(kbest, min(tb) if tb else None)} |")
EOF
