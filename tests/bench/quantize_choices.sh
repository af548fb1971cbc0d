#!/usr/bin/env bash
# How the int8-static variant's defaults were chosen: accuracy and top-1 agreement with the float32
# file (ONNX Runtime, the test split) for each calibration method and each choice of quantizable
# nodes left in float. Needs the pipeline's models and reference predictions.
#
#   bash tests/bench/quantize_choices.sh [MODELS_DIR] [DATA]   (defaults: models, data/standin)
set -euo pipefail
cd "$(dirname "$0")/../.."
models=${1:-models}
data=${2:-data/standin/cifar-10-batches-bin}
cargo build --quiet -p runtime --bin runtime
runtime="${CARGO_TARGET_DIR:-target}/debug/runtime"
echo "| model | method | kept float | accuracy | fp32 accuracy | top-1 agreement with fp32 |"
echo "|---|---|---|---|---|---|"
for m in cnn vgg16; do
    [ -f "$models/$m.onnx" ] || continue
    for method in minmax percentile mse; do
        for keep in none first last first,last; do
            out="$models/$m.choice-$method-${keep/,/-}.onnx"
            "$runtime" quantize "$models/$m.onnx" --variant int8-static --calibration "$data" \
                --calibration-method "$method" --keep-float "$keep" -o "$out" >/dev/null
            "$runtime" verify "$out" --engines ort --provider cpu >/dev/null 2>&1 || true
            python3 - "${out%.onnx}.verify.json" "$m" "$method" "$keep" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
e = r["engines"][0]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {100 * e['accuracy']:.2f} % | "
      f"{100 * r['reference_accuracy']:.2f} % | {100 * e['top1_agreement']:.2f} % |")
PY
            rm -f "$out" "${out%.onnx}.verify.json"
        done
    done
done
