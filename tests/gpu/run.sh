#!/usr/bin/env bash
# The GPU check: what the machine has, CUDA training of both models, verification of their exports
# (and their int8 static variants) with ort and tract, the CNN on the CPU with the same seed, the
# same CNN in PyTorch on the same card as the peer, and the int8 VGG16 against float32 on ONNX
# Runtime's GPU providers. Run from the repository root on a machine with an NVIDIA GPU:
#
#   bash tests/gpu/run.sh [BIN_DIR]
#
# BIN_DIR (default .device) holds what `bash tests/gpu/pack.sh` builds and packs elsewhere: the
# trainer with CUDA, the runtime CLI, ONNX Runtime's CPU library, the public VGG16 with
# bf16-rounded weights and, where packed, a GPU build of ONNX Runtime in pieces (ort-gpu/).
# Logs and the table go to $OUT (default /tmp/gpu-check). A failed step does not stop the later
# ones (each says what it can), but the script exits 1 naming the steps that failed; a failure
# while preparing stops it at once.
#
# DEVICE=cpu rehearses the script on a machine without a GPU (TRAIN_IMAGES and TEST_IMAGES make it
# short); the steps, the logs and the table are the same.
set -uo pipefail
die() { echo "FAILED: $*" >&2; exit 1; }
BIN=${1:-.device}
OUT=${OUT:-/tmp/gpu-check}
WORK=${WORK:-/tmp/gpu-work}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT" "$WORK"
# Each file is unpacked once per machine: later calls on the same machine skip it.
unpacked() {
    local xz=$1 to=$2
    [[ -s "$to" && "$to" -nt "$xz" ]] && return
    python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
        "$xz" "$to.part" && mv "$to.part" "$to"
}
unpacked "$BIN/trainer.xz" "$WORK/trainer" && chmod +x "$WORK/trainer" || die "unpacking the trainer"
ORT_XZ=$(ls "$BIN"/libonnxruntime.so.*.xz 2>/dev/null | sort -V | tail -1)
[[ -n "$ORT_XZ" ]] || die "no libonnxruntime.so.*.xz in $BIN"
unpacked "$ORT_XZ" "$WORK/$(basename "$ORT_XZ" .xz)" || die "unpacking ONNX Runtime"
unpacked "$BIN/vgg16_bf16.onnx.xz" "$WORK/vgg16_bf16.onnx" || die "unpacking VGG16"
RUNTIME=
if [[ -f "$BIN/runtime.xz" ]]; then
    unpacked "$BIN/runtime.xz" "$WORK/runtime" && chmod +x "$WORK/runtime" && RUNTIME=$WORK/runtime
fi

# Where CUDA's libraries may be: the toolkit, the system, and the nvidia-* wheels of the Python that
# holds PyTorch (cuBLAS, cuDNN, cuFFT, cuRAND, the CUDA runtime, NVRTC).
SITE=$(python3 -c "import site, sys; print(' '.join(site.getsitepackages() + [site.getusersitepackages()]))" 2>/dev/null)
LIB_DIRS=()
for d in /usr/local/cuda*/ /usr/lib/x86_64-linux-gnu /usr/local/lib /opt $SITE; do
    [[ -d "$d" ]] && LIB_DIRS+=("$d")
done
find_libs() { find "${LIB_DIRS[@]}" -maxdepth 6 -name "$1" 2>/dev/null | sort -u; }
NVRTC=$(find_libs 'libnvrtc.so*' | head -1)
WHEEL_LIBS=$(for d in $SITE; do find "$d/nvidia" -maxdepth 3 -name 'lib*.so*' -printf '%h\n' 2>/dev/null; done | sort -u | paste -sd:)
# Burn's CUDA backend loads libcuda (the driver) and NVRTC (CUDA's run-time compiler) at run time;
# ONNX Runtime's CUDA provider also loads cuBLAS, cuDNN, cuFFT and cuRAND.
export LD_LIBRARY_PATH="/usr/local/nvidia/lib64:${NVRTC:+$(dirname "$NVRTC"):}${WHEEL_LIBS:+$WHEEL_LIBS:}${LD_LIBRARY_PATH:-}"

# ONNX Runtime with its GPU providers: ORT_GPU (a libonnxruntime.so.* beside its provider
# libraries), else the pieces pack.sh made (ORT_GPU=1), else one already on the machine new enough
# for the runtime (1.31 or later); without one, the CPU library verifies and the int8 step is
# skipped.
gpu_ort() {
    if [[ -n "${ORT_GPU:-}" ]]; then
        echo "$ORT_GPU"
        return
    fi
    local pieces=$BIN/ort-gpu
    if [[ -f "$pieces/SHA256SUMS" ]]; then
        local want missing=()
        want=$(awk '{print $2}' "$pieces/SHA256SUMS")
        for p in $want; do [[ -f "$pieces/$p" ]] || missing+=("$p"); done
        # Joined and unpacked once per machine; the copy of SHA256SUMS beside them says from which.
        if ((${#missing[@]})); then
            echo "ONNX Runtime GPU pieces missing: ${missing[*]}" >&2
        else
            if cmp -s "$pieces/SHA256SUMS" "$WORK/ort-gpu/SHA256SUMS"; then
                :
            elif ! (cd "$pieces" && sha256sum --quiet -c SHA256SUMS >&2); then
                echo "ONNX Runtime GPU pieces: checksums differ" >&2
            else
                mkdir -p "$WORK/ort-gpu"
                # shellcheck disable=SC2086
                (cd "$pieces" && cat $want) | python3 -c "import lzma, sys, tarfile; tarfile.open(fileobj=lzma.open(sys.stdin.buffer), mode='r|').extractall(sys.argv[1])" "$WORK/ort-gpu" &&
                    cp "$pieces/SHA256SUMS" "$WORK/ort-gpu/" ||
                    echo "ONNX Runtime GPU pieces: unpacking failed" >&2
            fi
            if cmp -s "$pieces/SHA256SUMS" "$WORK/ort-gpu/SHA256SUMS"; then
                ls "$WORK"/ort-gpu/libonnxruntime.so.* | sort -V | tail -1
                return
            fi
        fi
    fi
    local cuda lib
    for cuda in $(find_libs libonnxruntime_providers_cuda.so); do
        lib=$(ls "$(dirname "$cuda")"/libonnxruntime.so.1.* 2>/dev/null | sort -V | tail -1)
        [[ -n "$lib" ]] && printf '%s\n' 1.31 "${lib##*.so.}" | sort -V -C && echo "$lib" && return
    done
}
GPU_ORT=$(gpu_ort)
if [[ -n "$GPU_ORT" ]]; then
    export ORT_DYLIB_PATH=$GPU_ORT
else
    export ORT_DYLIB_PATH="$WORK/$(basename "$ORT_XZ" .xz)"
fi
{
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
        nvidia-smi | grep -o 'CUDA Version: [0-9.]*'
    else
        echo "gpu: none (no nvidia-smi)"
    fi
    echo "cpus: $(nproc)"
    echo "python: $(command -v python3) $(python3 --version 2>&1)"
    echo "python packages:"
    python3 -m pip list 2>/dev/null | grep -i -E "onnxruntime|torch|nvidia|tensorrt|cuda" | sed 's/^/  /'
    echo "libraries:"
    for lib in 'libcuda.so*' 'libnvrtc.so*' 'libcudart.so*' 'libcublas.so*' 'libcublasLt.so*' 'libcudnn.so*' \
        'libcufft.so*' 'libcurand.so*' 'libnvinfer.so*' 'libonnxruntime.so*' 'libonnxruntime_providers_*.so'; do
        echo "  $lib: $(find_libs "$lib" | paste -sd' ')"
    done
    echo "nvrtc: ${NVRTC:-not found}"
    echo "onnx runtime: $ORT_DYLIB_PATH ($([[ -n "$GPU_ORT" ]] && echo "GPU build" || echo "CPU only"))"
} 2>&1 | tee "$OUT/machine.txt"

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
skip() { echo "$1: skipped, $2" | tee -a "$OUT/steps.txt"; }

# STEPS picks what runs (comma-separated), so that the check fits calls of limited length on one
# warm machine: e.g. STEPS=warmup,torch first, then STEPS=cuda,int8,compare. STEPS=none only
# prepares (unpacking, the survey in machine.txt).
STEPS=${STEPS:-warmup,torch,cuda,int8,compare}
want() { [[ ",$STEPS," == *",$1,"* ]]; }
T="$WORK/trainer"
DATA="$WORK/data/cifar-10-batches-bin"
if [[ "$STEPS" != none && ! -f "$DATA/test_batch.bin" ]]; then
    "$T" data --out "$WORK/data" --standin-train "${TRAIN_IMAGES:-50000}" --standin-test "${TEST_IMAGES:-5000}" ||
        die "generating the stand-in"
fi
# ORT's GPU providers in order of preference for the verification and the int8 step: TensorRT only
# where its libraries are (it builds an engine per model when the model loads).
PROVIDERS=cuda,cpu
[[ -n "$(find_libs 'libnvinfer.so*')" ]] && TENSORRT=1 || TENSORRT=

# Burn compiles its CUDA kernels with NVRTC and autotunes them on first use. The trainer keeps
# both in ~/.cache/cifar-onnx/cubecl/<GPU> (it says where on its first line), so a later process on
# the same machine skips that work: the warm-up pays it once, on a small set, for both models and
# the batch sizes the measured runs use. Without --quiet, the logs get a line per loop and then one
# every 30 s, which shows where the time goes.
want warmup && step warmup timeout 300 "$T" pipeline --data "$DATA" --models-dir "$WORK/warm" --device "$DEVICE" \
    --epochs 1 --vgg-epochs 1 --train-limit 2000 --test-limit 500 --vgg16 "$WORK/vgg16_bf16.onnx" \
    --name cnn-warm --vgg-name vgg16-warm --provider "$PROVIDERS"
want torch && step torch timeout 90 python3 tests/gpu/torch_cnn.py "$DATA" --epochs 1 --device "$DEVICE"
# Both models for an epoch of all training images, their exports and int8 static variants (calibrated
# on training images) verified with ort on the GPU provider that runs and with tract.
want cuda && step cuda timeout 330 "$T" pipeline --data "$DATA" --models-dir "$WORK/models" --device "$DEVICE" \
    --epochs 1 --vgg-epochs 1 --vgg16 "$WORK/vgg16_bf16.onnx" --quantize int8-static \
    --name "cnn-$DEVICE" --vgg-name "vgg16-$DEVICE" --provider "$PROVIDERS"
# The exported VGG16 and its int8 static variant on each GPU provider (no CPU fallback: a provider
# that cannot run is the step's error), timed by the runtime's bench.
if want int8; then
    if [[ -z "$GPU_ORT" ]]; then
        skip int8 "no GPU build of ONNX Runtime here (see machine.txt)"
    elif [[ -z "$RUNTIME" ]]; then
        skip int8 "no runtime.xz in $BIN"
    else
        for provider in cuda ${TENSORRT:+tensorrt} ${INT8_PROVIDERS:-}; do
            for variant in "" .int8-static; do
                model="$WORK/models/vgg16-$DEVICE$variant.onnx"
                step "bench-$provider${variant:-.fp32}" timeout 150 "$RUNTIME" bench "$model" --engine ort \
                    --provider "$provider" --batch 1,32,256 --runs 10 --format jsonl
            done
        done
        [[ -n "$TENSORRT" ]] || skip bench-tensorrt "no TensorRT libraries (libnvinfer) here"
    fi
fi
# The same seed and data on both devices, for the CPU-vs-GPU accuracy difference: 10,000 images,
# as a CPU epoch of all 50,000 does not fit the call (it did not finish in 170 s on 16 cores).
if want compare; then
    for device in $(printf '%s\n' "$DEVICE" cpu | sort -u); do
        step "compare-$device" timeout 200 "$T" pipeline --data "$DATA" --models-dir "$WORK/models" \
            --device "$device" --epochs 1 --train-limit 10000 --models-to-train cnn \
            --name "cnn-10k-$device" --provider "$PROVIDERS"
    done
fi
# What CubeCL tuned (one line per kernel and shape) and how large the kernel cache grew; the
# trainer's folder, per GPU model (its first line on CUDA names it).
if [[ "${XDG_CACHE_HOME:-}" == /* ]]; then CACHE=$XDG_CACHE_HOME; else CACHE=$HOME/.cache; fi
for gpu in "$CACHE"/cifar-onnx/cubecl/*/; do
    [[ -d "$gpu" ]] || continue
    cp "$gpu/autotune.log" "$OUT/autotune-$(basename "$gpu").log" 2>/dev/null
    du -sh "$gpu"
done | tee "$OUT/kernel-cache.txt"
if [[ "$STEPS" != none ]]; then
    python3 tests/gpu/table.py "$WORK/models" "$OUT" | tee "$OUT/table.md" || FAILED+=("table")
fi
((${#FAILED[@]} == 0)) || die "${FAILED[*]}"
