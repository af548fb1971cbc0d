#!/usr/bin/env bash
# Builds here what tests/gpu/run.sh needs on a GPU machine and packs it, xz-compressed, into OUT
# (default .device/, ignored by git; what is carried to the machine must stay under 64 MiB):
#
#   bash tests/gpu/pack.sh [OUT]
#
#   trainer.xz                   the trainer with `--features cuda`, stripped; CUDA 13.0 bindings
#                                (driver 580) unless CUDARC_CUDA_VERSION says otherwise
#   libonnxruntime.so.<ver>.xz   ONNX Runtime's CPU library, as `runtime fetch-ort` fetches it
#   vgg16_bf16.onnx.xz           the public VGG16 (`trainer fetch-vgg16`) with its weights rounded
#                                to bf16 precision by tests/gpu/bf16.py (still a float32 file)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-.device}
# cargo's own target folder, shared with the README's commands, unless CARGO_TARGET_DIR says otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
venv="${CIFAR_ONNX_TOOLS:-$HOME/.cache/cifar-onnx-tools}/gpu-pack-venv"
mkdir -p "$OUT"

CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000} cargo build --quiet -p trainer --features cuda --bin trainer
strip -o "$OUT/trainer" "$CARGO_TARGET_DIR/debug/trainer"
vgg16=$("$OUT/trainer" fetch-vgg16)
xz -T0 -6 -f "$OUT/trainer"

cargo build --quiet -p runtime --bin runtime
ort=$("$CARGO_TARGET_DIR/debug/runtime" fetch-ort)
rm -f "$OUT"/libonnxruntime.so.*.xz
xz -T0 -6 -c "$ort" >"$OUT/$(basename "$ort").xz"

# onnx and numpy at the versions the benchmarks pin.
wanted=$(grep -E '^(onnx|numpy)==' tests/bench/requirements.txt)
if [ "$(cat "$venv/installed" 2>/dev/null)" != "$wanted" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check $wanted
    echo "$wanted" >"$venv/installed"
fi
"$venv/bin/python" tests/gpu/bf16.py "$vgg16" "$OUT/vgg16_bf16.onnx"
xz -T0 -6 -f "$OUT/vgg16_bf16.onnx"
du -ch "$OUT"/*.xz
