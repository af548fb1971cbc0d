#!/usr/bin/env bash
# Cross-builds the tract-only runtime CLI and C library for aarch64-unknown-linux-gnu, runs them
# under Debian's qemu-user on a freshly exported CNN (and its int8-weights variant) and a few
# images, and checks that they give the same top-1 classes and probabilities (within 1e-5) as the
# native build: the CLI, and the C example (runtime/c/examples/classify.c) linked against the
# library with the cross compiler.
#
# Run from the repository root: bash runtime/edge/aarch64.sh
# Installs what it needs: the Rust target (rustup), gcc-aarch64-linux-gnu and qemu-user (apt).
set -euo pipefail
cd "$(dirname "$0")/../.."
# cargo's own target folder, shared with the README's commands, unless CARGO_TARGET_DIR says otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
target=aarch64-unknown-linux-gnu

rustup target list --installed | grep -qx "$target" || rustup target add "$target"
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null
fi

cargo build --quiet --release -p runtime --no-default-features --features cli --target "$target"
# Tract only, with its thread pool as the CLI has it (so that both share one build of tract).
cargo build --quiet --release -p runtime-c --no-default-features --features threads --target "$target"
arm_bin="$CARGO_TARGET_DIR/$target/release/runtime"
arm_lib="$CARGO_TARGET_DIR/$target/release"

source runtime/edge/common.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
edge_model_and_images "$work"
edge_native "$work"
qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm_bin" classify --engine tract --format jsonl --top-k 10 \
    "$work/edge.onnx" "$work/images" >"$work/arm.jsonl" 2>/dev/null
edge_compare "$work/native.jsonl" "$work/arm.jsonl" "aarch64 (qemu)"
# The int8-weights variant runs there too.
edge_native "$work" edge.int8-weights
qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm_bin" classify --engine tract --format jsonl --top-k 10 \
    "$work/edge.int8-weights.onnx" "$work/images" >"$work/arm-int8.jsonl" 2>/dev/null
edge_compare "$work/native-edge.int8-weights.jsonl" "$work/arm-int8.jsonl" "aarch64 (qemu), int8-weights variant"

# The C library: the example, cross-compiled against it, prints the CLI's CSV.
aarch64-linux-gnu-gcc -std=c11 -Wall -Wextra -Werror -pedantic runtime/c/examples/classify.c \
    -I runtime/c/include -L "$arm_lib" -lcifar_onnx -Wl,-rpath,"$arm_lib" -o "$work/classify-arm"
qemu-aarch64 -L /usr/aarch64-linux-gnu "$work/classify-arm" "$work/edge.onnx" "$work"/images/*.png \
    >"$work/arm-c.csv" 2>/dev/null
cargo run --quiet -p runtime -- classify --engine tract --format csv --top-k 3 "$work/edge.onnx" \
    "$work"/images/*.png >"$work/native.csv" 2>/dev/null
edge_compare_csv "$work/native.csv" "$work/arm-c.csv" "aarch64 (qemu), the C library through its example" 1e-5 1
