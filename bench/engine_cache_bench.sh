#!/usr/bin/env bash
# Cold conversion vs warm start from the disk engine cache (issue 6; numbers in
# docs/performance.md, "Engine caches: cold build vs warm start").
#
# usage: bench/engine_cache_bench.sh [KILN] [REPS] [MODELS...]
#   KILN    the kiln binary (default build/bin/kiln)
#   REPS    cold/warm pairs per configuration (default 3)
#   MODELS  "file:batch" under bench/models (default resnet50.onnx:8 bert_base.onnx:1)
#
# Per model, with and without --time-tactics, REPS times: an empty cache directory, then
#   cold  `kiln bench MODEL --engine-cache DIR` (static mode: the conversion builds the engine
#         and writes the plan), then
#   warm  the same command again (the conversion loads the plan),
# and the same pair for the whole `kiln convert MODEL -o OUT --engine-cache DIR` process (wall
# time, the converted model written). Every process runs under `flock /tmp/kiln-bench.lock
# chrt -f 1` (one benchmark at a time on the shared machine). Prints one line per run: the
# bench's "conversion" (read the model + clean-up + segmentation + hash + build or fetch the
# plan) and "load" (conversion + Session start, which deserializes the plan), the first run,
# the median of the timed runs, and the `KILN_LOG_LEVEL=INFO` deserialization line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kiln=${1:-$root/build/bin/kiln}
reps=${2:-3}
shift $(( $# > 2 ? 2 : $# ))
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet50.onnx:8 bert_base.onnx:1)
run() { flock /tmp/kiln-bench.lock chrt -f 1 "$@"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-cache-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "# $(date -u '+%F %T') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg), $kiln"
for spec in "${models[@]}"; do
  model=$root/bench/models/${spec%%:*}
  batch=${spec##*:}
  for tactics in off on; do
    flag=()
    [ "$tactics" = on ] && flag=(--time-tactics)
    for ((r = 1; r <= reps; ++r)); do
      rm -rf "$work/cache" && mkdir -p "$work/cache"
      for phase in cold warm; do
        rc=0
        out=$(KILN_LOG_LEVEL=INFO run "$kiln" bench "$model" --batch "$batch" --threads 2 \
              --iterations 10 --warmup 2 --engine-cache "$work/cache" "${flag[@]}" 2>&1) || rc=$?
        if [ "$rc" -ne 0 ]; then  # reported, and the other runs go on
          printf '%s b%s tactics=%s rep%d %s: kiln bench FAILED (exit status %d): %s\n' \
            "${spec%%:*}" "$batch" "$tactics" "$r" "$phase" "$rc" "$(tail -1 <<<"$out")"
          continue
        fi
        conv=$(sed -n 's/.*conversion \([0-9.]*\) ms.*/\1/p' <<<"$out")
        load=$(sed -n 's/.*, load \([0-9.]*\) ms.*/\1/p' <<<"$out")
        first=$(sed -n 's/.*first run \([0-9.]*\) ms.*/\1/p' <<<"$out")
        median=$(sed -n 's/.* median \([0-9.]*\) .*/\1/p' <<<"$out")
        deser=$(grep -o 'CPU engine deserialized.*' <<<"$out" | head -1 || true)
        printf '%s b%s tactics=%s rep%d %s: bench conversion %s ms, start %s ms, first run %s ms, median %s ms | %s\n' \
          "${spec%%:*}" "$batch" "$tactics" "$r" "$phase" "$conv" "$load" "$first" "$median" "$deser"
      done
      rm -rf "$work/cache" && mkdir -p "$work/cache"
      for phase in cold warm; do  # the wall time inside the lock
        if ! run /usr/bin/time -f '%e' -o "$work/time" "$kiln" convert "$model" \
            -o "$work/out.onnx" --max-batch-size "$batch" --engine-cache "$work/cache" \
            "${flag[@]}" >/dev/null; then
          printf '%s b%s tactics=%s rep%d %s: kiln convert FAILED\n' "${spec%%:*}" "$batch" \
            "$tactics" "$r" "$phase"
          continue
        fi
        printf '%s b%s tactics=%s rep%d %s: kiln convert wall %.0f ms\n' "${spec%%:*}" "$batch" \
          "$tactics" "$r" "$phase" "$(echo "$(tail -1 "$work/time") * 1000" | bc -l)"
      done
    done
  done
done
echo "# done $(date -u '+%F %T') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
