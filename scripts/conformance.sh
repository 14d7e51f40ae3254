#!/usr/bin/env bash
# Regenerates docs/conformance.md (ONNX backend cases) and docs/ops.md (the op table).
set -euo pipefail
cd "$(dirname "$0")/.."
KILN_BUILD_TARGETS="kiln_conformance kiln_cli" scripts/setup.sh
build/bin/kiln_conformance --out docs/conformance.md
build/bin/kiln ops --markdown > docs/ops.md.tmp && mv docs/ops.md.tmp docs/ops.md
