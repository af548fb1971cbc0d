#!/usr/bin/env bash
# Builds the static classifier page: the tract-only runtime compiled to WebAssembly (size-tuned:
# the `web` profile, then binaryen's wasm-opt -Oz), its JavaScript bindings and the page itself,
# into OUT (default: runtime/web/site).
#
#   bash runtime/web/build.sh [OUT] [MODEL.onnx ...]
#
# The models given are copied into the site (OUT/models/, listed in OUT/models.json): the page
# offers them and loads the first on start. Without any, the user picks or drops a model file.
# Serve OUT with any static file server, e.g. `python3 -m http.server -d OUT`, and open it.
# Installs what it needs: the wasm32 Rust target (rustup), wasm-bindgen-cli (cargo install) and,
# where npm is present, binaryen's wasm-opt (npm); without npm the page works but is larger.
# The last line printed is the size of the page's WebAssembly, raw and gzipped.
set -euo pipefail
# Paths given are relative to where the script is run from; the build runs at the repository root.
out=$(realpath -m "${1:-$(dirname "$0")/site}")
models=()
for m in "${@:2}"; do models+=("$(realpath "$m")"); done
cd "$(dirname "$0")/../.."
# cargo's own target folder, shared with the README's commands, unless CARGO_TARGET_DIR says otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
target=wasm32-unknown-unknown
# Replace a site this script built before; never empty a folder that holds anything else.
if [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && ! [ -f "$out/index.html" -a -d "$out/pkg" ]; then
    echo "build.sh: $out is not empty and not a site built here; name a new folder" >&2
    exit 1
fi
# The CLI must be the same version as the wasm-bindgen crate (pinned in runtime/web/Cargo.toml).
bindgen_version=$(sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' runtime/web/Cargo.toml)
binaryen_version=132.0.0
tools="${CIFAR_ONNX_TOOLS:-$HOME/.cache/cifar-onnx-tools}"

rustup target list --installed | grep -qx "$target" || rustup target add "$target"
if ! "$tools/bin/wasm-bindgen" --version 2>/dev/null | grep -qF " $bindgen_version"; then
    cargo install --quiet wasm-bindgen-cli --version "=$bindgen_version" --root "$tools"
fi
wasm_opt="$tools/binaryen-$binaryen_version/node_modules/.bin/wasm-opt"
if ! [ -x "$wasm_opt" ] && command -v npm >/dev/null; then
    npm install --silent --no-audit --no-fund --prefix "$tools/binaryen-$binaryen_version" \
        "binaryen@$binaryen_version"
fi

# SIMD comes from .cargo/config.toml's rustflags for this target.
cargo build --quiet --profile web -p runtime-web --target "$target"
mkdir -p "$out"
rm -rf "$out/pkg" "$out/models" "$out/models.json" "$out"/*.html "$out"/*.js
"$tools/bin/wasm-bindgen" --target web --no-typescript --out-dir "$out/pkg" \
    "$CARGO_TARGET_DIR/$target/web/runtime_web.wasm"
wasm="$out/pkg/runtime_web_bg.wasm"
# wasm-opt takes minutes: its output is kept, by its input's hash, for the next site built.
optimised="$CARGO_TARGET_DIR/$target/web/wasm-opt-$(sha256sum "$wasm" | cut -c1-16).wasm"
if [ -f "$optimised" ]; then
    cp "$optimised" "$wasm"
elif [ -x "$wasm_opt" ]; then
    # The features rustc enables for this target by default, and SIMD.
    "$wasm_opt" -Oz --strip-debug --strip-producers --enable-simd --enable-bulk-memory \
        --enable-nontrapping-float-to-int --enable-sign-ext --enable-reference-types \
        --enable-multivalue --enable-mutable-globals "$wasm" -o "$wasm.opt"
    rm -f "$CARGO_TARGET_DIR/$target/web"/wasm-opt-*.wasm
    cp "$wasm.opt" "$optimised"
    mv "$wasm.opt" "$wasm"
else
    echo "build.sh: npm not found, so the WebAssembly is not shrunk by wasm-opt" >&2
fi
cp runtime/web/www/index.html runtime/web/www/main.js runtime/web/www/worker.js "$out/"
if [ ${#models[@]} -gt 0 ]; then
    mkdir -p "$out/models"
    cp "${models[@]}" "$out/models/"
    python3 -c 'import json, os, sys; print(json.dumps(["models/" + os.path.basename(m) for m in sys.argv[1:]]))' \
        "${models[@]}" >"$out/models.json"
fi
raw=$(stat -c %s "$wasm")
gzipped=$(gzip -9 -c "$wasm" | wc -c)
python3 -c 'import sys; r, g = map(int, sys.argv[1:3]); print(f"site: {sys.argv[3]}: WebAssembly {r / 1e6:.2f} MB ({r} bytes), {g / 1e6:.2f} MB gzipped ({g} bytes)")' \
    "$raw" "$gzipped" "$out"
