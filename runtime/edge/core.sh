#!/usr/bin/env bash
# The library's core, as an app embeds it (`default-features = false`): builds the embedding
# example against the core alone, checks that the program imports no process-spawning or
# networking function (fork, exec*, posix_spawn*, system, popen, socket, connect, getaddrinfo)
# while the CLI, built with the tools, does (so the check can see them), that the core's sources
# name no build-machine folder and start no process, and that the example classifies an image
# with tract.
#
# Run from the repository root: bash runtime/edge/core.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
# cargo's own target folder, shared with the README's commands, unless CARGO_TARGET_DIR says otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

forbidden='^(fork|vfork|execv|execve|execvp|execvpe|posix_spawn|posix_spawnp|system|popen|socket|connect|getaddrinfo)$'
imports() { nm -D --undefined-only "$1" | awk '{print $2}' | sed 's/@.*//' | sort -u; }

cargo build --quiet -p runtime --example embed --no-default-features
embed="$CARGO_TARGET_DIR/debug/examples/embed"
if found=$(imports "$embed" | grep -E "$forbidden"); then
    echo "FAIL: the core's example imports: $(echo $found)" >&2
    exit 1
fi
cargo build --quiet -p runtime --bin runtime
if ! imports "$CARGO_TARGET_DIR/debug/runtime" | grep -qE "$forbidden"; then
    echo "FAIL: the check sees no process or network import even in the CLI" >&2
    exit 1
fi

# The core's own sources: everything but the tools modules and the CLI.
core=$(find runtime/src -name '*.rs' \
    ! -path 'runtime/src/bin/*' ! -path 'runtime/src/data/*' \
    ! -path 'runtime/src/verify/*' \
    ! -name batch.rs ! -name wheel.rs ! -name search.rs)
# Code only: comments and doc examples (which run in the crate's own tests) may name them.
if grep -nE 'std::process|Command::new|std::net|CARGO_MANIFEST_DIR|env::set_var' $core \
    | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//'; then
    echo "FAIL: the core's sources start processes, use the network or name build folders" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/red.png" <<'PY'
import struct, sys, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
rows = b"".join(b"\0" + bytes([220, 20, 20]) * 8 for _ in range(8))
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
open(sys.argv[1], "wb").write(png)
PY
out=$(ORT_DYLIB_PATH= "$embed" runtime/tests/fixtures/tiny_classifier.onnx "$work/red.png" 2>&1)
echo "$out"
grep -q "via tract" <<<"$out" || { echo "FAIL: the example did not classify with tract" >&2; exit 1; }
echo "core: no process or network imports ($(imports "$embed" | wc -l) imports checked); the example ran on tract"
