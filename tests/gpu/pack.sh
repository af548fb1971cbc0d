#!/usr/bin/env bash
# Builds here what tests/gpu/run.sh needs on a GPU machine and packs it, xz-compressed, into OUT
# (default .device/, ignored by git; what is carried to the machine must stay under 64 MiB):
#
#   bash tests/gpu/pack.sh [OUT]
#
#   trainer.xz                   the trainer with `--features cuda`, stripped; CUDA 13.0 bindings
#                                (driver 580) unless CUDARC_CUDA_VERSION says otherwise
#   runtime.xz                   the runtime CLI, stripped (for ONNX Runtime's GPU providers, when
#                                the machine has a GPU build of ONNX Runtime)
#   libonnxruntime.so.<ver>.xz   ONNX Runtime's CPU library, as `runtime fetch-ort` fetches it
#   vgg16_bf16.onnx.xz           the public VGG16 (`trainer fetch-vgg16`) with its weights rounded
#                                to bf16 precision by tests/gpu/bf16.py (still a float32 file)
#   ort-gpu/part-NN, SHA256SUMS  with ORT_GPU=1: ONNX Runtime's GPU build (PyPI onnxruntime-gpu at
#                                the same version; CUDA 13, cuDNN 9), its main and provider libraries
#                                in one xz-compressed tar, split into pieces of at most 56 MiB so that
#                                each can be carried to the GPU machine in a call of its own; run.sh
#                                joins them once all are there. The machine must have cuBLAS, cuDNN,
#                                cuFFT and cuRAND for CUDA 13 (PyTorch's nvidia-* wheels have them).
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
strip -o "$OUT/runtime" "$CARGO_TARGET_DIR/debug/runtime"
ort=$("$OUT/runtime" fetch-ort)
xz -T0 -6 -f "$OUT/runtime"
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

if [[ -n "${ORT_GPU:-}" ]]; then
    ver=${ort##*.so.}
    cache="${CIFAR_ONNX_TOOLS:-$HOME/.cache/cifar-onnx-tools}/ort-gpu-$ver"
    if [[ ! -s "$cache/ort-gpu.tar.xz" ]]; then
        mkdir -p "$cache/libs"
        ls "$cache"/onnxruntime_gpu-*.whl >/dev/null 2>&1 ||
            python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
                --python-version 3.12 --platform manylinux_2_28_x86_64 "onnxruntime-gpu==$ver" -d "$cache"
        python3 - "$cache"/onnxruntime_gpu-*.whl "$cache/libs" <<'PY'
import os, sys, zipfile
wheel, to = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/libonnxruntime"):
            with z.open(name) as src, open(os.path.join(to, base), "wb") as dst:
                dst.write(src.read())
PY
        tar -cf - -C "$cache/libs" . | xz -T0 -9e >"$cache/ort-gpu.tar.xz.part"
        mv "$cache/ort-gpu.tar.xz.part" "$cache/ort-gpu.tar.xz"
        rm -rf "$cache/libs"
    fi
    rm -rf "$OUT/ort-gpu"
    mkdir -p "$OUT/ort-gpu"
    split -b 56M -d -a 2 "$cache/ort-gpu.tar.xz" "$OUT/ort-gpu/part-"
    (cd "$OUT/ort-gpu" && sha256sum part-* >SHA256SUMS)
    du -h "$OUT"/ort-gpu/part-*
fi
du -ch "$OUT"/*.xz
