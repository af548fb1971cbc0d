#!/usr/bin/env bash
# Cross-builds the tract-only runtime CLI for aarch64-unknown-linux-gnu, runs it under Debian's
# qemu-user on a freshly exported CNN and its int8-weights variant and a few images, and checks
# that it gives the same top-1 classes and probabilities (within 1e-5) as the native build.
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
arm_bin="$CARGO_TARGET_DIR/$target/release/runtime"

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
