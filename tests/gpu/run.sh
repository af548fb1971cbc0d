#!/usr/bin/env bash
# The GPU check: CUDA training of both models, verification of their exports with ort and tract,
# the CNN on the CPU with the same seed, and the same CNN in PyTorch on the same card as the peer.
# Run from the repository root on a machine with an NVIDIA GPU:
#
#   bash tests/gpu/run.sh [BIN_DIR]
#
# BIN_DIR (default .device) holds what `bash tests/gpu/pack.sh` builds and packs elsewhere: the
# trainer with CUDA, ONNX Runtime's CPU library and the public VGG16 with bf16-rounded weights.
# Logs and the table go to $OUT (default /tmp/gpu-check). A failed step does not stop the later
# ones (each says what it can), but the script exits 1 naming the steps that failed; a failure
# while preparing stops it at once.
set -uo pipefail
die() { echo "FAILED: $*" >&2; exit 1; }
BIN=${1:-.device}
OUT=${OUT:-/tmp/gpu-check}
WORK=${WORK:-/tmp/gpu-work}
mkdir -p "$OUT" "$WORK"
unpack() {
    python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" "$1" "$2"
}
unpack "$BIN/trainer.xz" "$WORK/trainer" && chmod +x "$WORK/trainer" || die "unpacking the trainer"
ORT_XZ=$(ls "$BIN"/libonnxruntime.so.*.xz | sort -V | tail -1)
[[ -n "$ORT_XZ" ]] || die "no libonnxruntime.so.*.xz in $BIN"
unpack "$ORT_XZ" "$WORK/$(basename "$ORT_XZ" .xz)" || die "unpacking ONNX Runtime"
unpack "$BIN/vgg16_bf16.onnx.xz" "$WORK/vgg16_bf16.onnx" || die "unpacking VGG16"
export ORT_DYLIB_PATH="$WORK/$(basename "$ORT_XZ" .xz)"
# Burn's CUDA backend loads libcuda (the driver) and NVRTC (CUDA's run-time compiler) at run time.
NVRTC=$(find /usr/local/cuda*/ /usr/lib/x86_64-linux-gnu /opt -name 'libnvrtc.so*' 2>/dev/null | head -1)
export LD_LIBRARY_PATH="/usr/local/nvidia/lib64:${NVRTC:+$(dirname "$NVRTC"):}${LD_LIBRARY_PATH:-}"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    echo "cpus: $(nproc)"
    echo "nvrtc: ${NVRTC:-not found}"
} | tee "$OUT/machine.txt"
T="$WORK/trainer"
"$T" data --out "$WORK/data" --standin-train 50000 --standin-test "${TEST_IMAGES:-5000}" ||
    die "generating the stand-in"
DATA="$WORK/data/cifar-10-batches-bin"

FAILED=()
step() {
    local name=$1
    shift
    echo "== $name: $*"
    local start=$SECONDS
    "$@" 2>&1 | tee "$OUT/$name.log"
    local status=${PIPESTATUS[0]}
    echo "$name: exit $status, $((SECONDS - start)) s" | tee -a "$OUT/steps.txt"
    ((status == 0)) || FAILED+=("$name (exit $status)")
}

# STEPS picks what runs (comma-separated), so that the check fits calls of limited length on one
# warm machine: e.g. STEPS=warmup,torch first, then STEPS=cuda,compare.
STEPS=${STEPS:-warmup,torch,cuda,compare}
want() { [[ ",$STEPS," == *",$1,"* ]]; }
# Burn compiles its CUDA kernels with NVRTC and autotunes them on first use. The trainer keeps
# both in ~/.cache/cifar-onnx/cubecl/<GPU> (it says where on its first line), so a later process on
# the same machine skips that work: the warm-up pays it once, on a small set, for both models and
# the batch sizes the measured runs use. Without --quiet, the logs get a line per loop and then one
# every 30 s, which shows where the time goes.
want warmup && step warmup timeout 300 "$T" pipeline --data "$DATA" --models-dir "$WORK/warm" --device cuda \
    --epochs 1 --vgg-epochs 1 --train-limit 2000 --test-limit 500 --vgg16 "$WORK/vgg16_bf16.onnx" \
    --name cnn-warm --vgg-name vgg16-warm
want torch && step torch timeout 90 python3 tests/gpu/torch_cnn.py "$DATA" --epochs 1
want cuda && step cuda timeout 260 "$T" pipeline --data "$DATA" --models-dir "$WORK/models" --device cuda \
    --epochs 1 --vgg-epochs 1 --vgg16 "$WORK/vgg16_bf16.onnx" \
    --name cnn-cuda --vgg-name vgg16-cuda
# The same seed and data on both devices, for the CPU-vs-GPU accuracy difference: 10,000 images,
# as a CPU epoch of all 50,000 does not fit the call (it did not finish in 170 s on 16 cores).
if want compare; then
    for device in cuda cpu; do
        step "compare-$device" timeout 200 "$T" pipeline --data "$DATA" --models-dir "$WORK/models" \
            --device "$device" --epochs 1 --train-limit 10000 --models-to-train cnn \
            --name "cnn-10k-$device"
    done
fi
# What CubeCL tuned (one line per kernel and shape) and how large the kernel cache grew; the
# trainer's folder, per GPU model (its first line on CUDA names it).
if [[ "${XDG_CACHE_HOME:-}" == /* ]]; then CACHE=$XDG_CACHE_HOME; else CACHE=$HOME/.cache; fi
for gpu in "$CACHE"/cifar-onnx/cubecl/*/; do
    cp "$gpu/autotune.log" "$OUT/autotune-$(basename "$gpu").log" 2>/dev/null
    du -sh "$gpu"
done | tee "$OUT/kernel-cache.txt"
python3 tests/gpu/table.py "$WORK/models" "$OUT/torch.log" | tee "$OUT/table.md" || FAILED+=("table")
((${#FAILED[@]} == 0)) || die "${FAILED[*]}"
