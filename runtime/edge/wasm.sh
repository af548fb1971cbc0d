#!/usr/bin/env bash
# Builds the WebAssembly classifier page (runtime/web/build.sh), opens it in headless Chromium,
# picks a freshly exported CNN (and then its int8-weights variant) and a few images through the
# page's file inputs, and checks that the page gives the same top-1 classes and probabilities (within 1e-5) as the native CLI.
#
# Run from the repository root: bash runtime/edge/wasm.sh
# Installs what it needs: Debian's chromium (apt), playwright-core (npm), and what build.sh needs.
set -euo pipefail
cd "$(dirname "$0")/../.."
# cargo's own target folder, shared with the README's commands, unless CARGO_TARGET_DIR says otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

if ! command -v chromium >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
(cd runtime/web/test && npm ci --silent --no-audit --no-fund)

source runtime/edge/common.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash runtime/web/build.sh "$work/site"
edge_model_and_images "$work"
edge_native "$work"
node runtime/web/test/browser.mjs "$work/site" "$work/edge.onnx" "$work/images" "$work/page.jsonl" \
    "${WASM_SCREENSHOT:-$work/page.png}"
edge_compare "$work/native.jsonl" "$work/page.jsonl" "wasm32 (headless Chromium)"
# The int8-weights variant, picked the same way.
edge_native "$work" edge.int8-weights
node runtime/web/test/browser.mjs "$work/site" "$work/edge.int8-weights.onnx" "$work/images" "$work/page-int8.jsonl"
edge_compare "$work/native-edge.int8-weights.jsonl" "$work/page-int8.jsonl" "wasm32 (headless Chromium), int8-weights variant"
# A site that carries its model: the page loads it by itself.
bash runtime/web/build.sh "$work/site" "$work/edge.onnx" >/dev/null
node runtime/web/test/browser.mjs "$work/site" - "$work/images" "$work/preloaded.jsonl"
edge_compare "$work/native.jsonl" "$work/preloaded.jsonl" "wasm32 with the site's own model.onnx"
