#!/usr/bin/env bash
# kiln's main job on the bundled default model, from a fresh clone: set up, build, and run
# PaddleOCR's text-orientation classifier (models/ppocr_cls) through kiln, printing its
# outputs and time. Extra arguments go to `kiln run`.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN_BUILD_TARGETS=kiln_cli scripts/setup.sh
build/bin/kiln inspect models/ppocr_cls/model.onnx
echo
build/bin/kiln run models/ppocr_cls/model.onnx --shape x=1,3,48,192 --iterations 10 "$@"
