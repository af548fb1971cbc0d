#!/usr/bin/env bash
# The CPU training kernels on a CPU without AVX-512: the convolution-gradient tests, as `cargo test
# --workspace` builds them (CI reuses its test build), run under qemu-user emulating an AVX2-only CPU
# (Haswell), where gemm must choose its AVX2 kernels, and natively, where it chooses AVX-512 if this
# CPU has it. Same binary, same checks.
#
#   bash trainer/tests/cpu_fallback.sh
#
# Installs qemu-user (apt) when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
# cargo's own target folder, shared with the README's commands, unless CARGO_TARGET_DIR says otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

if ! command -v qemu-x86_64 >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null
fi

bin=$(cargo test --workspace --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "conv_gradients":
        print(m["executable"])')
[ -x "$bin" ] || { echo "cpu_fallback: the test binary was not built" >&2; exit 1; }

native=portable
grep -qw fma /proc/cpuinfo && native=avx2+fma
grep -qw avx512f /proc/cpuinfo && native=avx512f
# The VGG16 block-5 case takes minutes under emulation; the others cover every code path, the
# channels-last grids included. Each name is matched exactly, and a run that passes fewer tests
# than named fails (a renamed test would otherwise run nothing and pass).
tests=(the_cnn_convolutions_match_burn strides_dilations_padding_and_odd_sizes_match_burn
    channels_last_grids_match_burn gemm_kernel)

run_all() {
    local log
    log=$("$@" --exact --test-threads 1 "${tests[@]}" 2>&1) || { echo "$log"; return 1; }
    echo "$log" | grep -E '^test |^test result'
    local passed
    passed=$(echo "$log" | sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p')
    if [ "${passed:-0}" != "${#tests[@]}" ]; then
        echo "cpu_fallback: ${passed:-0} tests passed, ${#tests[@]} expected" >&2
        return 1
    fi
}

echo "native ($native):"
EXPECT_GEMM_KERNEL=$native run_all "$bin"
echo "emulated Haswell (AVX2, no AVX-512):"
EXPECT_GEMM_KERNEL=avx2+fma run_all qemu-x86_64 -cpu Haswell "$bin"
