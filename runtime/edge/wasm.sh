#!/usr/bin/env bash
# The WebAssembly classifier page in headless Chromium, used as a person would use it, checked
# against the native CLI, and timed against onnxruntime-web:
#   - the site is built (runtime/web/build.sh) and its WebAssembly kept within 8 MB, 2.5 MB gzipped;
#   - a PNG and a model tract cannot run, picked as the model, are refused with their names; a
#     freshly exported CNN is then picked, and a folder's images plus two broken files are picked at
#     once: the broken ones get their own errors, the rest the CLI's top-1 and probabilities (1e-5);
#   - a site that carries the model and its int8-weights and fp16 variants loads the first by itself
#     and runs each variant chosen in its list, again as the CLI does, the images reaching the page
#     as a picked folder, dropped files (with a broken one) and picked files;
#   - the CNN and a VGG16 (fine-tuned briefly) are timed against onnxruntime-web's WebAssembly
#     backend in the same browser (runtime/web/test/compare.mjs), which must agree with the page.
#
# Run from the repository root: bash runtime/edge/wasm.sh
# Installs what it needs: Debian's chromium (apt), playwright-core and onnxruntime-web (npm, pinned
# in runtime/web/test/package.json), and what build.sh needs. WASM_SCREENSHOT=FILE keeps a
# screenshot of the page; WASM_COMPARE=FILE keeps the timings as JSON.
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
bash runtime/web/build.sh "$work/site" | tee "$work/build.log"
python3 - "$work/site/pkg/runtime_web_bg.wasm" <<'PY'
import gzip, os, sys
raw = os.path.getsize(sys.argv[1])
gz = len(gzip.compress(open(sys.argv[1], "rb").read(), 9))
assert raw <= 8_000_000 and gz <= 2_500_000, f"the page's WebAssembly is {raw} bytes, {gz} gzipped: over 8 MB or 2.5 MB"
print(f"size: {raw / 1e6:.2f} MB <= 8 MB, {gz / 1e6:.2f} MB gzipped <= 2.5 MB")
PY

edge_model_and_images "$work"
edge_native "$work"
head -c 300 "$work/images/img3.png" >"$work/truncated.png"
echo "a text file named like an image" >"$work/notes.jpg"
node runtime/web/test/browser.mjs "$work/site" "$work/images" "$work/page.jsonl" --model "$work/edge.onnx" \
    --not-model "$work/images/img0.png" \
    --not-model fuzz/regressions/model_bytes/tract_string_initializer_raw_data.onnx \
    --broken "$work/truncated.png" --broken "$work/notes.jpg" --screenshot "${WASM_SCREENSHOT:-$work/page.png}"
edge_compare "$work/native.jsonl" "$work/page.jsonl" "wasm32 (headless Chromium), the model picked by the user"

# A site that carries its models: the page loads the first by itself; each variant is chosen.
cargo run --quiet -p runtime -- quantize "$work/edge.onnx" --variant fp16 >/dev/null
bash runtime/web/build.sh "$work/site" "$work/edge.onnx" "$work/edge.int8-weights.onnx" "$work/edge.fp16.onnx" >/dev/null
node runtime/web/test/browser.mjs "$work/site" "$work/images" "$work/preloaded.jsonl" --by folder
edge_compare "$work/native.jsonl" "$work/preloaded.jsonl" "wasm32, the site's own model, a folder picked"
for variant in int8-weights fp16; do
    edge_native "$work" "edge.$variant"
    # The int8 images are dropped on the page, with a broken file among them.
    by=(--by files)
    [ "$variant" = int8-weights ] && by=(--by drop --broken "$work/truncated.png")
    node runtime/web/test/browser.mjs "$work/site" "$work/images" "$work/page-$variant.jsonl" \
        --bundled "edge.$variant.onnx" "${by[@]}"
    edge_compare "$work/native-edge.$variant.jsonl" "$work/page-$variant.jsonl" "wasm32, the $variant variant chosen in the site's list"
done

# Speed against onnxruntime-web, same browser, same inputs.
cargo run --quiet -p trainer -- train-vgg16 --data "$work/data/cifar-10-batches-bin" --vgg-epochs 1 \
    --train-limit 100 --test-limit 20 --models-dir "$work" --vgg-name vgg16 --quiet >/dev/null 2>&1
node runtime/web/test/compare.mjs "$work/site" "$work/images" "${WASM_COMPARE:-$work/compare.json}" \
    "$work/edge.onnx" "$work/vgg16.onnx"
