#!/usr/bin/env bash
# The C library as an app uses it, from its header alone:
#   - the committed header is what cbindgen makes of src/, and documents every function;
#   - the example (examples/classify.c) and the ABI test (tests/abi.c) build with -Wall -Wextra
#     -Werror -pedantic and run under AddressSanitizer (with its leak checker) and
#     UndefinedBehaviorSanitizer: the ABI test passes every bad argument, a missing file, a bad
#     and a hostile model, broken images and too-small buffers, and shares a classifier between
#     threads; the example's CSV for a folder of images and two broken files is the CLI's
#     (`runtime classify --format csv`: same rows, top-3 labels, probabilities within 1e-6), with
#     tract, and with ONNX Runtime (without the sanitizers: ONNX Runtime is not built for them);
#   - a C++ program compiles against the header and runs;
#   - the tract-only shared library, size-tuned and stripped, is at most 12 MB (printed), and the
#     example linked against it, and against the static library, gives the same answers.
#
# Run from the repository root: bash runtime/c/test.sh
# Installs what it needs: cbindgen (cargo install, pinned), gcc/g++ from Debian (apt) when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
# cargo's own target folder, shared with the README's commands, unless CARGO_TARGET_DIR says otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
tools="${CIFAR_ONNX_TOOLS:-$HOME/.cache/cifar-onnx-tools}"
cbindgen_version=0.29.2

if ! command -v cc >/dev/null || ! command -v c++ >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc g++ >/dev/null
fi
if ! "$tools/bin/cbindgen" --version 2>/dev/null | grep -qF " $cbindgen_version"; then
    cargo install --quiet cbindgen --version "=$cbindgen_version" --root "$tools"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The header.
"$tools/bin/cbindgen" --quiet --config runtime/c/cbindgen.toml --output "$work/cifar_onnx.h" runtime/c
if ! diff -u runtime/c/include/cifar_onnx.h "$work/cifar_onnx.h"; then
    echo "FAIL: runtime/c/include/cifar_onnx.h is not what cbindgen makes of runtime/c/src/;" >&2
    echo "      run: $tools/bin/cbindgen --config runtime/c/cbindgen.toml --output runtime/c/include/cifar_onnx.h runtime/c" >&2
    exit 1
fi
python3 - runtime/c/include/cifar_onnx.h <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
functions = [i for i, l in enumerate(lines) if re.match(r"^[a-z_ ]+[ *]cifar_\w+\(", l)]
bare = [lines[i] for i in functions if not lines[i - 1].strip().endswith("*/")]
assert functions and not bare, f"functions without a doc comment: {bare}"
print(f"header: {len(functions)} functions, each with its doc comment")
PY

# The library (the workspace's build: ONNX Runtime and tract), the example and the tests.
cargo build --quiet -p runtime-c
cargo build --quiet -p runtime --bin runtime
lib="$CARGO_TARGET_DIR/debug"
cli="$CARGO_TARGET_DIR/debug/runtime"
warn=(-std=c11 -Wall -Wextra -Werror -pedantic -g)
sanitize=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
link=(-I runtime/c/include -L "$lib" -lcifar_onnx -Wl,-rpath,"$lib")
cc "${warn[@]}" "${sanitize[@]}" runtime/c/examples/classify.c "${link[@]}" -o "$work/classify-asan"
cc "${warn[@]}" runtime/c/examples/classify.c "${link[@]}" -o "$work/classify"
cc "${warn[@]}" "${sanitize[@]}" runtime/c/tests/abi.c "${link[@]}" -lpthread -lm -o "$work/abi"
c++ -std=c++17 -Wall -Wextra -Werror runtime/c/tests/header.cpp "${link[@]}" -o "$work/header-cpp"
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

source runtime/edge/common.sh
edge_model_and_images "$work"
head -c 300 "$work/images/img3.png" >"$work/truncated.png"
echo "a text file named like an image" >"$work/notes.jpg"
# img0.png's pixels as plain RGB rows, for the RGB8 call (the PNGs are 8-bit RGB, filter 0).
python3 - "$work/images/img0.png" "$work/img0.rgb" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
i, idat = 8, b""
while i < len(data):
    n, kind = struct.unpack(">I4s", data[i:i + 8])
    body = data[i + 8:i + 8 + n]
    if kind == b"IHDR":
        w, h, depth, colour = struct.unpack(">IIBB", body[:10])
        assert (depth, colour) == (8, 2), "img0.png is 8-bit RGB"
    idat += body if kind == b"IDAT" else b""
    i += 12 + n
raw = zlib.decompress(idat)
rows = [raw[y * (3 * w + 1):(y + 1) * (3 * w + 1)] for y in range(h)]
assert all(r[0] == 0 for r in rows), "no PNG filter"
open(sys.argv[2], "wb").write(b"".join(r[1:] for r in rows))
PY

"$work/abi" "$work/edge.onnx" "$work/images/img0.png" "$work/img0.rgb" 32 32 "$work/truncated.png" \
    "$work/images/img1.png" fuzz/regressions/model_bytes/tract_string_initializer_raw_data.onnx
"$work/header-cpp" "$work/edge.onnx"

files=("$work"/images/*.png "$work/truncated.png" "$work/notes.jpg")
"$cli" classify --engine tract --format csv --top-k 3 "$work/edge.onnx" "${files[@]}" >"$work/cli.csv" 2>/dev/null || true
status=0
CIFAR_ENGINE=tract "$work/classify-asan" "$work/edge.onnx" "${files[@]}" >"$work/c.csv" 2>"$work/c.err" || status=$?
[ "$status" = 1 ] || { cat "$work/c.err" >&2; echo "FAIL: the example exits $status, not 1, with broken images" >&2; exit 1; }
edge_compare_csv "$work/cli.csv" "$work/c.csv" "C example (tract, ASan/UBSan)" 1.001e-6 3
# A model that is not one: the example says so, naming it, and exits 1.
if CIFAR_ENGINE=tract "$work/classify-asan" "$work/images/img1.png" "${files[@]}" >/dev/null 2>"$work/bad.err"; then
    echo "FAIL: the example accepts a PNG as its model" >&2
    exit 1
fi
grep -q "img1.png: not a usable model" "$work/bad.err" || { cat "$work/bad.err" >&2; exit 1; }
echo "C example: a PNG given as the model: $(cat "$work/bad.err")"

# ONNX Runtime through the same library (its path as the CLI finds it).
cargo run --quiet -p runtime -- fetch-ort >/dev/null
ort_lib=$(ls runtime/onnxruntime/libonnxruntime.so.* | head -n 1)
"$cli" classify --engine ort --format csv --top-k 3 "$work/edge.onnx" "${files[@]}" >"$work/cli-ort.csv" 2>/dev/null || true
CIFAR_ENGINE=ort ORT_DYLIB_PATH="$PWD/$ort_lib" "$work/classify" "$work/edge.onnx" "${files[@]}" >"$work/c-ort.csv" 2>/dev/null || true
edge_compare_csv "$work/cli-ort.csv" "$work/c-ort.csv" "C example (ONNX Runtime)" 1.001e-6 3

# The tract-only library as shipped: size-tuned, stripped, within 12 MB, and the same answers.
cargo build --quiet --profile ship -p runtime-c --no-default-features
shipped="$CARGO_TARGET_DIR/ship/libcifar_onnx.so"
cc "${warn[@]}" runtime/c/examples/classify.c -I runtime/c/include -L "$CARGO_TARGET_DIR/ship" -lcifar_onnx \
    -Wl,-rpath,"$CARGO_TARGET_DIR/ship" -o "$work/classify-shipped"
"$work/classify-shipped" "$work/edge.onnx" "${files[@]}" >"$work/c-shipped.csv" 2>/dev/null || true
edge_compare_csv "$work/cli.csv" "$work/c-shipped.csv" "C example on the shipped tract-only library" 1.001e-6 3
# The static library of the same build, linked into the example. tract's assembly kernels carry no
# stack note, so the linker is told that the stack is not executable.
cc "${warn[@]}" runtime/c/examples/classify.c -I runtime/c/include "$CARGO_TARGET_DIR/ship/libcifar_onnx.a" \
    -lpthread -ldl -lm -Wl,-z,noexecstack -o "$work/classify-static" 2>"$work/static.err" \
    || { cat "$work/static.err" >&2; exit 1; }
"$work/classify-static" "$work/edge.onnx" "${files[@]}" >"$work/c-static.csv" 2>/dev/null || true
edge_compare_csv "$work/cli.csv" "$work/c-static.csv" "C example linked with the static tract-only library" 1.001e-6 3
size=$(stat -c %s "$shipped")
python3 -c 'import sys; s = int(sys.argv[1]); print(f"size: the tract-only libcifar_onnx.so, stripped: {s / 1e6:.2f} MB ({s} bytes), at most 12 MB"); sys.exit(s > 12_000_000)' "$size"
