#!/usr/bin/env bash
# The Python package: builds its wheel (maturin, release, abi3), installs it into a virtual
# environment with the pinned test requirements, and runs its tests (pytest): the package against
# the `runtime` CLI, and the Ray Data example on a local Ray cluster. Arguments go to pytest.
#
#   bash runtime/python/test.sh            (the first run installs about 700 MB into the venv)
#   bash runtime/python/test.sh -k ray -s  (one test, with its measurements printed)
set -euo pipefail
cd "$(dirname "$0")"
# cargo's own target folder, shared with the README's commands, unless CARGO_TARGET_DIR says otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(cd ../.. && pwd)/target}"
venv="${CIFAR_ONNX_TOOLS:-$HOME/.cache/cifar-onnx-tools}/python-venv"

if ! cmp -s requirements-test.txt "$venv/requirements.txt" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements-test.txt
    cp requirements-test.txt "$venv/requirements.txt"
fi

dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
"$venv/bin/maturin" build --release --quiet --out "$dist"
wheel=$(echo "$dist"/*.whl)
echo "wheel: $(basename "$wheel"), $(du -k "$wheel" | cut -f1) KiB"
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"

# The programs the tests compare with and train with (the README's build).
cargo build --quiet -p runtime --bin runtime -p trainer --bin trainer
export CIFAR_ONNX_RUNTIME="$CARGO_TARGET_DIR/debug/runtime"
export CIFAR_ONNX_TRAINER="$CARGO_TARGET_DIR/debug/trainer"
# Ray comes with the test requirements: its tests must run, not be skipped.
export CIFAR_ONNX_REQUIRE_RAY=1
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
