//! Writing files whole: through a temporary file and a rename.

use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so that a
/// reader never sees a half-written file and an interrupted write leaves the old file in place.
///
/// # Errors
/// When the folder cannot be made or the file cannot be written or renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
