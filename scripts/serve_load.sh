#!/usr/bin/env bash
# Load test of `kiln serve` with wrk: throughput and p50/p99 latency with dynamic batching on
# and off at a few concurrency levels, then an over-saturation run against a small queue that
# must answer only 200s and clean 503s. Every run is bounded by time (wrk -d DURATION; wrk has
# no request-count limit), so the request count is bounded by DURATION x throughput.
# The same runs go over KServe v2 gRPC with kiln_serve_grpc_load (bench/serve_grpc_load.cc:
# one thread and connection per client, batch-1 ModelInfer with raw_input_contents), where
# over-saturation must answer only OK and UNAVAILABLE; skipped when that client is not built.
#
#   scripts/serve_load.sh [MODEL.onnx]        (default: the bundled models/ppocr_cls, converted)
#
# Env: KILN=build/bin/kiln, CONCURRENCY="1 4 16", DURATION=5s, BATCH_DELAY_US=2000,
#      THREADS=2 (wrk threads), PORT=18500, GRPC_PORT=18501,
#      GRPC_LOAD=<dir of KILN>/kiln_serve_grpc_load. Output: Markdown tables (HTTP, then gRPC).
# Needs wrk (Debian package wrk; scripts/setup.sh installs it), curl and python3 (request body).
set -euo pipefail
cd "$(dirname "$0")/.."

KILN="${KILN:-build/bin/kiln}"
CONCURRENCY="${CONCURRENCY:-1 4 16}"
DURATION="${DURATION:-5s}"
BATCH_DELAY_US="${BATCH_DELAY_US:-2000}"
THREADS="${THREADS:-2}"
PORT="${PORT:-18500}"
GRPC_PORT="${GRPC_PORT:-18501}"
GRPC_LOAD="${GRPC_LOAD:-$(dirname "$KILN")/kiln_serve_grpc_load}"
GRPC_SECS="${DURATION%s}"  # the gRPC client takes seconds
GRPC_FLAGS=()
if [ -x "$GRPC_LOAD" ]; then GRPC_FLAGS=(--grpc-port "$GRPC_PORT"); else
  echo "serve_load: $GRPC_LOAD not built (target kiln_serve_grpc_load): gRPC runs skipped"; GRPC_LOAD=""; fi
command -v wrk >/dev/null || { echo "serve_load: wrk not installed (apt-get install wrk)"; exit 1; }
[ -x "$KILN" ] || { echo "serve_load: $KILN not built"; exit 1; }

WORK="$(mktemp -d /tmp/kiln-serve-load.XXXXXX)"
SERVER_PID=""
GRPC_ROWS=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

MODEL="${1:-}"
mkdir -p "$WORK/repo/cls/1"
if [ -z "$MODEL" ]; then
  "$KILN" convert models/ppocr_cls/model.onnx -o "$WORK/repo/cls/1/model.onnx" \
      --input-shape x=-1,3,48,192 --max-batch-size 8 >/dev/null
else
  cp "$MODEL" "$WORK/repo/cls/1/model.onnx"
fi

# One batch-1 request with the binary tensor extension (random input).
python3 - "$WORK" <<'EOF'
import json, random, struct, sys
work = sys.argv[1]
random.seed(7)
n = 3 * 48 * 192
data = struct.pack("<%df" % n, *[random.uniform(-1, 1) for _ in range(n)])
hdr = json.dumps({"inputs": [{"name": "x", "shape": [1, 3, 48, 192], "datatype": "FP32",
                              "parameters": {"binary_data_size": len(data)}}],
                  "outputs": [{"name": "softmax_0.tmp_0", "parameters": {"binary_data": True}}]})
open(work + "/body.bin", "wb").write(hdr.encode() + data)
open(work + "/hdrlen", "w").write(str(len(hdr)))
EOF

cat > "$WORK/post.lua" <<EOF
local f = io.open("$WORK/body.bin", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["Inference-Header-Content-Length"] = "$(cat "$WORK/hdrlen")"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok, unavailable, other = 0, 0, 0 end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 elseif status == 503 then unavailable = unavailable + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local o, u, x = 0, 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); u = u + t:get("unavailable"); x = x + t:get("other") end
  local e = summary.errors
  io.write(string.format("RESULT ok=%d unavailable=%d other=%d errors=%d err_detail=%d/%d/%d/%d p50_ms=%.2f p99_ms=%.2f secs=%.3f\n",
    o, u, x, e.connect + e.read + e.write + e.timeout, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.duration / 1e6))
end
EOF

start_server() {  # $1: config.json text, then extra kiln serve flags
  echo "$1" > "$WORK/repo/cls/config.json"
  shift
  "$KILN" serve --model-repository "$WORK/repo" --host 127.0.0.1 --http-port "$PORT" \
      --http-threads 128 "${GRPC_FLAGS[@]}" "$@" > "$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "serve_load: server did not start"; cat "$WORK/server.log"; exit 1
}
stop_server() {
  kill -TERM "$SERVER_PID"; wait "$SERVER_PID"; SERVER_PID=""
}
run_wrk() {  # $1 connections
  local c=$1
  local t=$(( c < THREADS ? c : THREADS ))
  wrk -t"$t" -c"$c" -d"$DURATION" --latency -s "$WORK/post.lua" \
      "http://127.0.0.1:$PORT/v2/models/cls/infer" | grep '^RESULT'
}
run_grpc() {  # $1 client threads (each its own connection)
  "$GRPC_LOAD" --target "127.0.0.1:$GRPC_PORT" --model cls --concurrency "$1" \
      --duration "$GRPC_SECS" > "$WORK/grpc.out" || true
  grep '^RESULT' "$WORK/grpc.out" || { echo "serve_load: gRPC client failed" >&2; cat "$WORK/grpc.out" >&2; exit 1; }
}
row() {  # $1 mode, $2 concurrency, $3 RESULT line, $4/$5 counts before/after: a table row
  eval "$(echo "$3" | sed 's/^RESULT //')"
  local n=$((ok + unavailable + other)) n0 e0 n1 e1
  read -r n0 e0 <<< "$4"; read -r n1 e1 <<< "$5"
  local mean; mean=$(awk -v n="$((n1 - n0))" -v e="$((e1 - e0))" 'BEGIN {printf "%.2f", (e > 0 ? n / e : 0)}')
  printf "| %s | %d | %d | %.0f | %s | %s | %s | %d |\n" "$1" "$2" "$n" \
    "$(awk -v n="$n" -v s="$secs" 'BEGIN {print n / s}')" "$p50_ms" "$p99_ms" "$mean" "$((unavailable + other + errors))"
}
counts() {  # "inferences executions" so far
  curl -s "http://127.0.0.1:$PORT/metrics" | awk '
    /^kiln_inference_count_total/ {n=$2} /^kiln_inference_exec_count_total/ {e=$2}
    END {print n + 0, e + 0}'
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, wrk and server on the same machine"
printf "| batching | connections | requests | throughput (req/s) | p50 ms | p99 ms | mean batch | non-200 |\n"
printf "|---|---|---|---|---|---|---|---|\n"
for mode in off on; do
  if [ "$mode" = on ]; then
    start_server "{\"max_batch_size\": 8, \"dynamic_batching\": {\"max_queue_delay_microseconds\": $BATCH_DELAY_US}, \"max_queue_size\": 1024}"
  else
    start_server '{"max_batch_size": 8, "dynamic_batching": false, "max_queue_size": 1024}'
  fi
  for c in $CONCURRENCY; do
    before=$(counts); line=$(run_wrk "$c"); row "$mode" "$c" "$line" "$before" "$(counts)"
  done
  if [ -n "$GRPC_LOAD" ]; then
    for c in $CONCURRENCY; do
      before=$(counts); line=$(run_grpc "$c")
      GRPC_ROWS+="$(row "$mode" "$c" "$line" "$before" "$(counts)")"$'\n'
    done
  fi
  stop_server
done
if [ -n "$GRPC_LOAD" ]; then
  echo
  echo "gRPC (kiln_serve_grpc_load, one client thread and connection per 'connections'):"
  printf "| batching | connections | requests | throughput (req/s) | p50 ms | p99 ms | mean batch | non-OK |\n"
  printf "|---|---|---|---|---|---|---|---|\n"
  printf "%s" "$GRPC_ROWS"
fi

# Above saturation: a queue of 4 and 64 connections. Only 200 and 503 are acceptable.
start_server '{"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_microseconds": 1000}, "max_queue_size": 4}'
line=$(run_wrk 64)
eval "$(echo "$line" | sed 's/^RESULT //')"
echo
echo "saturation (queue 4, 64 connections): ok=$ok 503=$unavailable other=$other socket_errors=$errors (connect/read/write/timeout $err_detail) p50=${p50_ms}ms p99=${p99_ms}ms"
http_bad=$((other + errors))
grpc_bad=0
if [ -n "$GRPC_LOAD" ]; then
  line=$(run_grpc 64)
  eval "$(echo "$line" | sed 's/^RESULT //')"
  echo "gRPC saturation (queue 4, 64 client threads): ok=$ok UNAVAILABLE=$unavailable other=$other p50=${p50_ms}ms p99=${p99_ms}ms"
  grpc_bad=$other
fi
stop_server
[ "$http_bad" -eq 0 ] && [ "$grpc_bad" -eq 0 ] || { echo "serve_load: unexpected failures"; exit 1; }
