//! Writing the trainer's outputs (a leaf: it imports no other module of the crate).

use anyhow::Context;
use std::path::Path;

/// Writes `bytes` to `path` atomically (temporary file and rename), naming the file on error.
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    runtime::write_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}
