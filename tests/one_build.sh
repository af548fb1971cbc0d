#!/usr/bin/env bash
# One build for both README commands: every dependency that `cargo test --workspace` compiles is the
# one `cargo run -p trainer` compiled (same crate, same features, same file), so after the main job
# the tests compile only the workspace's own crates. Fails naming the dependencies that would be
# compiled again (see workspace-hack/Cargo.toml for the fix).
#
#   bash tests/one_build.sh     (builds both when needed; seconds when they are up to date)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cifar-onnx-target}"

artifacts() {
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and "registry+" in m["package_id"]:
        print(m["package_id"].split("#")[-1], m["target"]["name"], " ".join(m["filenames"]))
' | sort -u
}

run=$(mktemp) test=$(mktemp)
trap 'rm -f "$run" "$test"' EXIT
cargo build --quiet -p trainer --bin trainer --message-format=json | artifacts >"$run"
cargo test --quiet --workspace --no-run --message-format=json 2>/dev/null | artifacts >"$test"
again=$(comm -23 "$test" "$run")
if [ -n "$again" ]; then
    echo "one_build: cargo test --workspace would compile these dependencies again after cargo run -p trainer:" >&2
    echo "$again" | cut -d' ' -f1,2 >&2
    exit 1
fi
echo "one_build: the test build reuses all $(wc -l <"$test") dependency artifacts of the run build"
