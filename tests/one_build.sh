#!/usr/bin/env bash
# One build for the README's commands: every dependency that `cargo test --workspace` compiles, and
# that the benchmark command (`tests/bench/run.sh`, which builds the trainer's and the runtime's
# binaries) compiles, is the one `cargo run -p trainer` compiled (same crate, same features, same
# file), so after the main job the tests and the benchmark compile only the workspace's own crates.
# Fails naming the dependencies that would be compiled again (see workspace-hack/Cargo.toml for the
# fix).
#
#   bash tests/one_build.sh     (builds both when needed; seconds when they are up to date)
set -euo pipefail
cd "$(dirname "$0")/.."
# cargo's own target folder, shared with the README's commands, unless CARGO_TARGET_DIR says otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

artifacts() {
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and "registry+" in m["package_id"]:
        print(m["package_id"].split("#")[-1], m["target"]["name"], " ".join(m["filenames"]))
' | sort -u
}

run=$(mktemp) test=$(mktemp) bench=$(mktemp)
trap 'rm -f "$run" "$test" "$bench"' EXIT
cargo build --quiet -p trainer --bin trainer --message-format=json | artifacts >"$run"
cargo test --quiet --workspace --no-run --message-format=json 2>/dev/null | artifacts >"$test"
# What tests/bench/run.sh builds.
cargo build --quiet -p trainer -p runtime --bins --message-format=json | artifacts >"$bench"
failed=0
for build in test bench; do
    again=$(comm -23 "${!build}" "$run")
    if [ -n "$again" ]; then
        echo "one_build: the $build build would compile these dependencies again after cargo run -p trainer:" >&2
        echo "$again" | cut -d' ' -f1,2 >&2
        failed=1
    else
        echo "one_build: the $build build reuses all $(wc -l <"${!build}") dependency artifacts of the run build"
    fi
done
exit $failed
