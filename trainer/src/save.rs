//! Writing the trainer's outputs (it imports only `error`).
//!
//! Every output is written to a temporary file and renamed into place, so a reader (or a run
//! killed mid-write) never sees half a file. The writes of the process also take turns with
//! [`exit_between_writes`], so that a program stopping at once (a second Ctrl-C) leaves no
//! temporary file behind either.

use crate::error::{Error, Result};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

static WRITING: Mutex<()> = Mutex::new(());

fn writing() -> MutexGuard<'static, ()> {
    WRITING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `bytes` to `path` atomically (temporary file and rename), naming the file on error.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let _turn = writing();
    runtime::write_atomic(path, bytes).map_err(|e| Error::io(path, e))
}

/// Runs `write`, a write of several files or one made elsewhere (e.g. a temporary folder renamed
/// into place), as one write: [`exit_between_writes`] waits for it to finish.
pub fn as_one_write<R>(write: impl FnOnce() -> R) -> R {
    let _turn = writing();
    write()
}

/// Exits the process with `code` once no write of this module is under way, so that no temporary
/// file is left half-written. For a binary's signal handler; a library never calls it.
pub fn exit_between_writes(code: i32) -> ! {
    let _turn = writing();
    std::process::exit(code)
}
