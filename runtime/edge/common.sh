# Shared by the edge checks (aarch64.sh, wasm.sh): a real exported model, a few images, the native
# CLI's answers for them, and the comparison. Source it from the repository root.

# edge_model_and_images DIR: trains the CNN briefly on a small stand-in (DIR/edge.onnx), writes its
# int8-weights variant (DIR/edge.int8-weights.onnx) and PNG images of several sizes and kinds to
# DIR/images with Python's standard library alone.
edge_model_and_images() {
    local work=$1
    cargo run --quiet -p trainer -- data --out "$work/data" --standin-train 500 --standin-test 100
    cargo run --quiet -p trainer -- train --data "$work/data/cifar-10-batches-bin" --epochs 1 \
        --models "$work" --name edge --quiet >/dev/null 2>&1
    cargo run --quiet -p runtime -- quantize "$work/edge.onnx" --variant int8-weights >/dev/null
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
}

# edge_native DIR [MODEL]: the native tract-only answers of DIR/MODEL.onnx (default: edge) for
# DIR's images, as JSON Lines in DIR/native.jsonl (DIR/native-MODEL.jsonl for another model).
edge_native() {
    local work=$1 model=${2:-edge}
    local out="$work/native.jsonl"
    [ "$model" = edge ] || out="$work/native-$model.jsonl"
    cargo run --quiet -p runtime -- classify --engine tract --format jsonl --top-k 10 \
        "$work/$model.onnx" "$work/images" >"$out" 2>/dev/null
}

# edge_compare NATIVE.jsonl OTHER.jsonl WHAT: same files, same top-1, probabilities within 1e-5.
edge_compare() {
    python3 - "$1" "$2" "$3" <<'PY'
import json, sys
native = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, open(sys.argv[1]))}
other = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, open(sys.argv[2]))}
what = sys.argv[3]
assert len(native) == 4 and sorted(native) == sorted(other), (sorted(native), sorted(other))
worst = 0.0
for name, a in native.items():
    b = other[name]
    assert a["ok"] and b["ok"], (a, b)
    assert a["top"][0]["class"] == b["top"][0]["class"], (name, a["top"][0], b["top"][0])
    pa = {t["class"]: t["probability"] for t in a["top"]}
    worst = max(worst, max(abs(pa[t["class"]] - t["probability"]) for t in b["top"]))
assert worst <= 1e-5, worst
print(f"{what} matches native on {len(other)} images: same top-1, max abs diff of probabilities {worst:.2e}")
PY
}

# edge_compare_csv CLI.csv OTHER.csv WHAT TOLERANCE RANKS: two `classify --format csv` outputs (the
# CLI's and the C example's) list the same files with the same statuses, engine and provider, and
# the same labels at the first RANKS ranks, their probabilities within TOLERANCE.
edge_compare_csv() {
    python3 - "$@" <<'PY'
import csv, sys
cli, other = (list(csv.DictReader(open(p))) for p in sys.argv[1:3])
what, tolerance, ranks = sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
assert cli and [r["path"] for r in cli] == [r["path"] for r in other], "different files"
worst = 0.0
for a, b in zip(cli, other):
    assert [a[k] for k in ("status", "engine", "provider")] == [b[k] for k in ("status", "engine", "provider")], (a, b)
    if a["status"] == "error":
        assert b["error"], b
        continue
    for k in range(1, ranks + 1):
        assert a[f"label_{k}"] == b[f"label_{k}"], (a, b)
        worst = max(worst, abs(float(a[f"probability_{k}"]) - float(b[f"probability_{k}"])))
assert worst <= tolerance, worst
ok = sum(r["status"] == "ok" for r in other)
print(f"{what}: the CLI's {len(other)} rows ({ok} classified, {len(other) - ok} errors), the same top-{ranks} labels, max abs diff {worst:.2e}")
PY
}
