#!/usr/bin/env bash
# A CI-sized fuzz run: each target for FUZZ_SECONDS (default 60), from its seeds and saved
# regressions, with libFuzzer (cargo fuzz, nightly Rust). Fails when an input crashes a target,
# hangs it or runs it out of memory; the input is printed and kept under $FUZZ_OUT (default: a
# temporary folder) for fuzz/regressions/<target>/.
#
#   bash fuzz/ci.sh                      every target, the VGG16 graph's included
#   FUZZ_SECONDS=300 bash fuzz/ci.sh model_bytes
#
# Installs cargo-fuzz (crates.io) when missing. Needs a nightly toolchain: without one it says so
# and fails, as the replays of `cargo test` alone then cover the saved inputs.
set -euo pipefail
cd "$(dirname "$0")"
# The fuzz workspace's own target folder (its builds take other compiler flags than the main
# one's), unless FUZZ_TARGET_DIR says otherwise.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"
seconds="${FUZZ_SECONDS:-60}"
out="${FUZZ_OUT:-$(mktemp -d)}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: no nightly Rust toolchain here: cargo fuzz cannot run" >&2
    exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install --locked --quiet cargo-fuzz

runtime_targets=(image_bytes model_bytes cifar_file burn_json image_folder)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${runtime_targets[@]}" vgg16_graph)

# -O: optimised, as the code runs for users; -a: debug assertions (overflow checks) on;
# -s none: no sanitizer (the code is safe Rust; the fuzzer looks for panics, hangs, memory).
flags=(-O -a -s none)
failed=()
for target in "${targets[@]}"; do
    features=()
    [ "$target" = vgg16_graph ] && features=(--features trainer)
    corpus="$out/corpus/$target"
    mkdir -p "$corpus" "$out/found/$target"
    for saved in seeds regressions; do
        [ -d "$saved/$target" ] && cp -n "$saved/$target"/* "$corpus"/ 2>/dev/null || true
    done
    echo "== $target: ${seconds}s from $(ls "$corpus" | wc -l) saved inputs"
    if ! cargo +nightly fuzz run "${flags[@]}" "${features[@]}" "$target" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
        -artifact_prefix="$out/found/$target/" 2>"$out/$target.log"; then
        failed+=("$target")
        grep -E "ERROR|panicked|Test unit written" "$out/$target.log" | head -20 >&2 || true
    fi
    grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$out/$target.log" || true
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: ${failed[*]} failed; the inputs are in $out/found" >&2
    exit 1
fi
echo "fuzz: ${targets[*]}: no crash, hang or out-of-memory in ${seconds}s each"
