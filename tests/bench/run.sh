#!/usr/bin/env bash
# The benchmark command: ours against the tools users would pick instead, side by side.
#
#   bash tests/bench/run.sh            full sizes, median of 3 interleaved runs (~20 min on 2 cores)
#   bash tests/bench/run.sh --quick    tiny sizes, one run: checks that the command works
#   bash tests/bench/run.sh --out FILE also write the table to FILE
#
# Builds the trainer and the runtime, fetches ONNX Runtime and the public VGG16 (pip), installs the
# Python peers (tests/bench/requirements.txt) into a virtualenv of their own, then runs
# tests/bench/bench.py, which prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
# cargo's own target folder, shared with the README's commands, unless CARGO_TARGET_DIR says otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
venv="${CIFAR_ONNX_TOOLS:-$HOME/.cache/cifar-onnx-tools}/bench-venv"

command -v /usr/bin/time >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
if ! cmp -s tests/bench/requirements.txt "$venv/requirements.txt" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/bench/requirements.txt
    cp tests/bench/requirements.txt "$venv/requirements.txt"
fi

cargo build --quiet -p trainer -p runtime --bins
bin="$CARGO_TARGET_DIR/debug"
"$bin/runtime" fetch-ort >/dev/null
vgg16=$("$bin/trainer" fetch-vgg16)
TF_CPP_MIN_LOG_LEVEL=2 "$venv/bin/python" tests/bench/bench.py --bin "$bin" --vgg16 "$vgg16" "$@"
