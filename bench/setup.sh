#!/usr/bin/env bash
# Installs what the benchmark set needs, and only the benchmark: Debian's PyTorch 1.13 /
# torchvision / numpy / onnx (for exporting the models and the PyTorch peer) and ONNX Runtime
# 1.30 for node (npm onnxruntime-node, pinned in bench/peer/package-lock.json). Idempotent:
# already-present packages are skipped. Run as root (apt-get).
#
#   bash bench/setup.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# libopenblas0-pthread: Debian's torch calls the system BLAS (libblas.so.3) for Linear/matmul;
# without it that is netlib's reference BLAS and the PyTorch peer runs BERT ~50x slower than it
# should. Installing it switches the libblas.so.3 alternative to OpenBLAS.
# python3-skimage: the photographs bench/precision_quality.py cuts its inputs from (and the LFW
# faces of its in-domain set); python3-pil + fonts-dejavu-core + fonts-liberation: the text lines
# it renders for the text-direction classifier (bench/indomain_inputs.py).
debs=(python3-torch python3-torchvision python3-numpy python3-onnx libopenblas0-pthread
      python3-skimage python3-pil fonts-dejavu-core fonts-liberation)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm: any install will do (a nodesource nodejs already carries npm and conflicts with
# Debian's npm package), so only install Debian's when the commands are missing.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "bench/setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# onnxruntime-node ships its native binding inside the npm package; --ignore-scripts skips the
# install script that would try to download CUDA/TensorRT extras.
if [[ ! -f "$here/peer/node_modules/onnxruntime-node/package.json" ]]; then
  echo "bench/setup.sh: installing onnxruntime-node into bench/peer/node_modules"
  (cd "$here/peer" && if [[ -f package-lock.json ]]; then npm ci --ignore-scripts --no-audit --no-fund;
                      else npm install --ignore-scripts --no-audit --no-fund; fi)
fi
/usr/bin/python3 -c "import torch, torchvision, onnx, numpy; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'onnx', onnx.__version__)"
node -e "const ort=require('$here/peer/node_modules/onnxruntime-node'); console.log('onnxruntime-node', require('$here/peer/node_modules/onnxruntime-node/package.json').version)"
