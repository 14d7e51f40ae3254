#!/usr/bin/env bash
# kiln against its peers on the benchmark set, on the same inputs, in one run.
#
#   bash bench/run_peer_bench.sh [--no-convert] [--tfjs] [--cases "resnet50:1 bert_base:1"]
#
# For each case (model:batch) one input .npy is made (fixed seed); then ROUNDS rounds run
# every case on kiln (`kiln bench --json`), ONNX Runtime (bench/peer_bench.js: onnxruntime-node
# 1.30, 2 intra-op threads, all graph optimizations) and PyTorch (bench/torch_bench.py: Debian's
# torch 1.13, TorchScript traced + frozen + optimize_for_inference, 2 threads), alternating
# runtimes (the order rotates every round) so that slow drifts of the machine's load hit all of
# them alike. The table gives each runtime's median latency (the median of its per-round
# medians), the ratios, and the outputs' agreement (relative L2 between the runtimes' outputs
# on the same input).
#
# Prerequisites: bash bench/setup.sh; /usr/bin/python3 bench/export_models.py; a built kiln.
# Environment: KILN (default build-bench/bin/kiln, else build/bin/kiln), ROUNDS (3),
# ITERATIONS (10 timed runs per round and runtime), KILN_ITERATIONS (default ITERATIONS; the
# reference runtime is slow), WARMUP (2), THREADS (2), RESULTS (bench/results/<timestamp>),
# PRIO: "rt" runs every benchmark process under SCHED_FIFO (chrt -f 1; root) so that builds
# running beside it on a shared machine do not preempt its threads (2-thread OpenMP/ORT runs
# otherwise stall on descheduled threads), "nice" under nice -n -10, default: as is.
# --no-convert: time kiln's reference runtime (no engines). --tfjs: also time kiln alone on
# the TF.js fixture models (scripts/fetch_tfjs_models.sh), which the peers cannot read.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
py=/usr/bin/python3

cases="resnet50:1 resnet50:8 mobilenetv2:1 mobilenetv2:8 bert_base:1"
kiln_flags=()
tfjs=0
while (($#)); do
  case "$1" in
    --no-convert) kiln_flags+=(--no-convert) ;;
    --tfjs) tfjs=1 ;;
    --cases) cases="$2"; shift ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "run_peer_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

kiln="${KILN:-}"
if [[ -z "$kiln" ]]; then
  for k in "$repo/build-bench/bin/kiln" "$repo/build/bin/kiln"; do
    [[ -x "$k" ]] && { kiln="$k"; break; }
  done
fi
[[ -x "$kiln" ]] || { echo "run_peer_bench.sh: no kiln binary (set KILN=...)" >&2; exit 1; }
rounds="${ROUNDS:-3}"
iters="${ITERATIONS:-10}"
kiln_iters="${KILN_ITERATIONS:-$iters}"
warmup="${WARMUP:-2}"
threads="${THREADS:-2}"
models="$here/models"
results="${RESULTS:-$here/results/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$results"
[[ -f "$here/peer/node_modules/onnxruntime-node/package.json" ]] ||
  { echo "run_peer_bench.sh: run bash bench/setup.sh first" >&2; exit 1; }

{
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu:     $(lscpu | sed -n 's/^Model name:[[:space:]]*//p') (family $(lscpu | sed -n 's/^CPU family:[[:space:]]*//p'), model $(lscpu | sed -n 's/^Model:[[:space:]]*//p'); $(nproc) cores)"
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15-minute load average at start)"
  echo "kiln:    $("$kiln" version) ${kiln_flags[*]:-}"
  echo "prio:    ${PRIO:-default}"
  echo "rounds:  $rounds x (warm-up $warmup + $iters timed; kiln $kiln_iters timed), threads $threads"
} | tee "$results/setup.txt"

case "${PRIO:-}" in
  rt) prio=(chrt -f 1) ;;
  nice) prio=(nice -n -10) ;;
  "") prio=() ;;
  *) echo "run_peer_bench.sh: PRIO must be rt, nice or empty" >&2; exit 2 ;;
esac
run() { ${prio[@]+"${prio[@]}"} "$@"; }

run_kiln() {  # case_dir model batch round
  run "$kiln" bench "$models/$2.onnx" --input "$(input_name "$2")=$1/input.npy" \
    --iterations "$kiln_iters" --warmup "$warmup" --threads "$threads" ${kiln_flags[@]+"${kiln_flags[@]}"} \
    --output-dir "$1/out_kiln" --json "$1/kiln_round$4.json" > "$1/kiln_round$4.log" 2>&1
}
run_ort() {
  run node "$here/peer_bench.js" "$models/$2.onnx" --input "$(input_name "$2")=$1/input.npy" \
    --iterations "$iters" --warmup "$warmup" --threads "$threads" \
    --output-dir "$1/out_ort" --json "$1/ort_round$4.json" > "$1/ort_round$4.log" 2>&1
}
run_torch() {
  run "$py" "$here/torch_bench.py" "$2" --input "$1/input.npy" --models "$models" \
    --iterations "$iters" --warmup "$warmup" --threads "$threads" \
    --output-dir "$1/out_torch" --json "$1/torch_round$4.json" > "$1/torch_round$4.log" 2>&1
}
input_name() { "$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['input']['name'])" "$models/$1.json"; }

for c in $cases; do
  model="${c%%:*}" batch="${c##*:}"
  [[ -f "$models/$model.onnx" ]] ||
    { echo "run_peer_bench.sh: $models/$model.onnx missing: run bench/export_models.py" >&2; exit 1; }
  mkdir -p "$results/${model}_b$batch"
  "$py" "$here/peer_util.py" input "$models/$model.json" "$batch" "$results/${model}_b$batch/input.npy"
done

runtimes=(kiln ort torch)
for ((r = 1; r <= rounds; ++r)); do
  for c in $cases; do
    model="${c%%:*}" batch="${c##*:}" dir="$results/${model}_b$batch"
    for ((k = 0; k < 3; ++k)); do
      rt="${runtimes[$(((k + r) % 3))]}"
      printf 'round %d/%d  %-12s b%-3s %-6s ' "$r" "$rounds" "$model" "$batch" "$rt"
      if "run_$rt" "$dir" "$model" "$batch" "$r"; then
        grep -m1 '^latency' "$dir/${rt}_round$r.log" | sed 's/^latency *//'
      else
        echo "FAILED (see $dir/${rt}_round$r.log)"; tail -3 "$dir/${rt}_round$r.log" | sed 's/^/    /'
      fi
    done
  done
done

if ((tfjs)); then
  tfjs_dir="${KILN_TFJS_MODELS_DIR:-$repo/.cache/tfjs/package/models}"
  [[ -d "$tfjs_dir" ]] || bash "$repo/scripts/fetch_tfjs_models.sh"
  echo; echo "TF.js fixture models (kiln only):"
  for fx in "${KILN_FIXTURES_DIR:-$repo/../shared/fixtures}"/tfjs/*/; do
    name="$(basename "$fx")"
    if run "$kiln" bench "$tfjs_dir/$name.json" --iterations "$iters" --warmup "$warmup" \
         --threads "$threads" ${kiln_flags[@]+"${kiln_flags[@]}"} \
         --json "$results/tfjs_$name.json" > "$results/tfjs_$name.log" 2>&1; then
      printf '  %-20s %s\n' "$name" "$(grep -m1 '^latency' "$results/tfjs_$name.log" | sed 's/^latency *//')"
    else
      printf '  %-20s FAILED: %s\n' "$name" "$(tail -1 "$results/tfjs_$name.log")"
    fi
  done
fi

echo
"$py" "$here/peer_util.py" table "$results" | tee "$results/table.txt"
"$py" "$here/peer_util.py" table "$results" --markdown > "$results/table.md"
echo "results: $results"
