#!/usr/bin/env bash
# kiln's main job on the bundled default model, from a fresh clone: set up and build, then
# convert PaddleOCR's text-orientation classifier (models/ppocr_cls) — engines for what the
# CPU backend supports, native fallback for the rest — print the conversion summary, run the
# converted model and report its speed-up over the unconverted graph on the same inputs.
# Extra arguments go to `kiln bench` (e.g. --batch 8).
set -euo pipefail
cd "$(dirname "$0")/.."
KILN_BUILD_TARGETS=kiln_cli scripts/setup.sh
MODEL=models/ppocr_cls/model.onnx
OUT="${TMPDIR:-/tmp}/ppocr_cls.kiln.onnx"
build/bin/kiln convert "$MODEL" -o "$OUT" --input-shape x=-1,3,48,192 --max-batch-size 8
echo
build/bin/kiln run "$OUT" --shape x=1,3,48,192
echo
build/bin/kiln bench "$MODEL" --shape x=1,3,48,192 --max-batch-size 8 --compare native \
  --iterations 50 "$@"
