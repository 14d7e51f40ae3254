#!/usr/bin/env bash
# Re-runs every TF.js fixture (../../../shared/fixtures/tfjs/*/manifest.json and the repo's
# tests/data/tfjs_fixtures/*/manifest.json) in TF.js CPU with
# reference.js and compares with the stored outputs (default: bit-exact, --rtol 0 --atol 0).
#   scripts/tfjs_reference/check_fixtures.sh [extra reference.js options, e.g. --rtol 1e-6]
# Needs `npm ci` here and the models from scripts/fetch_tfjs_models.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
fixtures="${KILN_FIXTURES_DIR:-${repo}/../shared/fixtures}/tfjs"
models="${KILN_TFJS_MODELS_DIR:-${repo}/.cache/tfjs/package/models}"
[[ -d "$here/node_modules" ]] || { echo "run 'npm ci' in $here first" >&2; exit 1; }
[[ -d "$models" ]] || { echo "no models at $models: run scripts/fetch_tfjs_models.sh" >&2; exit 1; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
status=0
for manifest in "$fixtures"/*/manifest.json "$repo"/tests/data/tfjs_fixtures/*/manifest.json; do
  [[ -f "$manifest" ]] || continue
  dir="$(dirname "$manifest")"
  name="$(basename "$dir")"
  mapfile -t args < <(node -e '
    const m = require(process.argv[1]), d = process.argv[2], path = require("path");
    const a = [path.join(process.argv[3], path.basename(m.source.model_json))];
    for (const i of m.inputs) a.push("--input", `${i.name}=${path.join(d, i.file)}`);
    a.push("--outputs", m.outputs.map((o) => o.name).join(","));
    a.push("--compare", m.outputs.map((o) => path.join(d, o.file)).join(","));
    console.log(a.join("\n"));' "$manifest" "$dir" "$models")
  if node "$here/reference.js" "${args[@]}" --output-dir "$out/$name" --rtol 0 --atol 0 "$@" \
      >"$out/$name.json" 2>"$out/$name.err"; then
    echo "$name: reproduced"
  else
    echo "$name: MISMATCH or error"; cat "$out/$name.json" "$out/$name.err"; status=1
  fi
done
exit $status
