#!/usr/bin/env bash
# Cross-builds the tract-only runtime CLI for aarch64-unknown-linux-gnu, runs it under Debian's
# qemu-user on a freshly exported CNN and a few images, and checks that it gives the same top-1
# classes and probabilities (within 1e-5) as the native build.
#
# Run from the repository root: bash runtime/edge/aarch64.sh
# Installs what it needs: the Rust target (rustup), gcc-aarch64-linux-gnu and qemu-user (apt).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cifar-onnx-target}"
target=aarch64-unknown-linux-gnu

rustup target list --installed | grep -qx "$target" || rustup target add "$target"
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null
fi

cargo build --quiet --release -p runtime --no-default-features --features cli --target "$target"
arm_bin="$CARGO_TARGET_DIR/$target/release/runtime"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A real exported model: the CNN trained briefly on a small stand-in.
cargo run --quiet -p trainer -- data --out "$work/data" --standin-train 500 --standin-test 100
cargo run --quiet -p trainer -- train --data "$work/data/cifar-10-batches-bin" --epochs 1 \
    --models "$work" --name edge --quiet >/dev/null 2>&1
# Images of several sizes and kinds, written by Python's standard library alone.
python3 - "$work/images" <<'PY'
import os, random, struct, sys, zlib
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
random.seed(5)
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
for i, (w, h, gray) in enumerate([(32, 32, False), (50, 20, False), (17, 64, True), (96, 96, False)]):
    channels = 1 if gray else 3
    rows = b"".join(b"\x00" + bytes(random.randrange(256) for _ in range(w * channels)) for _ in range(h))
    header = struct.pack(">IIBBBBB", w, h, 8, 0 if gray else 2, 0, 0, 0)
    with open(os.path.join(out, f"img{i}.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY

args=(classify --engine tract --format jsonl --top-k 10 "$work/edge.onnx" "$work/images")
cargo run --quiet -p runtime -- "${args[@]}" >"$work/native.jsonl" 2>/dev/null
qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm_bin" "${args[@]}" >"$work/arm.jsonl" 2>/dev/null

python3 - "$work/native.jsonl" "$work/arm.jsonl" <<'PY'
import json, sys
native = [json.loads(l) for l in open(sys.argv[1])]
arm = [json.loads(l) for l in open(sys.argv[2])]
assert len(native) == len(arm) == 4, (len(native), len(arm))
worst = 0.0
for a, b in zip(native, arm):
    assert a["ok"] and b["ok"] and a["path"] == b["path"], (a, b)
    assert a["top"][0]["class"] == b["top"][0]["class"], (a["path"], a["top"][0], b["top"][0])
    pa = {t["class"]: t["probability"] for t in a["top"]}
    pb = {t["class"]: t["probability"] for t in b["top"]}
    worst = max(worst, max(abs(pa[c] - pb[c]) for c in pa))
assert worst <= 1e-5, worst
print(f"aarch64 (qemu) matches native on {len(arm)} images: same top-1, max abs diff of probabilities {worst:.2e}")
PY
