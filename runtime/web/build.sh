#!/usr/bin/env bash
# Builds the static classifier page: the tract-only runtime compiled to WebAssembly, its
# JavaScript bindings and the page itself, into OUT (default: runtime/web/site).
#
#   bash runtime/web/build.sh [OUT] [MODEL.onnx]
#
# With MODEL, the page loads it on start (as OUT/model.onnx); without, the user picks one.
# Serve OUT with any static file server, e.g. `python3 -m http.server -d OUT`, and open it.
# Installs what it needs: the wasm32 Rust target (rustup) and wasm-bindgen-cli (cargo install).
set -euo pipefail
# Paths given are relative to where the script is run from; the build runs at the repository root.
out=$(realpath -m "${1:-$(dirname "$0")/site}")
model=${2:+$(realpath "$2")}
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
tools="${CIFAR_ONNX_TOOLS:-$HOME/.cache/cifar-onnx-tools}"

rustup target list --installed | grep -qx "$target" || rustup target add "$target"
if ! "$tools/bin/wasm-bindgen" --version 2>/dev/null | grep -qF " $bindgen_version"; then
    cargo install --quiet wasm-bindgen-cli --version "=$bindgen_version" --root "$tools"
fi

cargo build --quiet --release -p runtime-web --target "$target"
mkdir -p "$out"
rm -rf "$out/pkg" "$out/index.html" "$out/main.js" "$out/model.onnx"
"$tools/bin/wasm-bindgen" --target web --no-typescript --out-dir "$out/pkg" \
    "$CARGO_TARGET_DIR/$target/release/runtime_web.wasm"
cp runtime/web/www/index.html runtime/web/www/main.js "$out/"
if [ -n "$model" ]; then
    cp "$model" "$out/model.onnx"
fi
echo "site: $out ($(du -sh "$out/pkg/runtime_web_bg.wasm" | cut -f1) of WebAssembly)"
