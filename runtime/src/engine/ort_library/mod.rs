//! Finding the ONNX Runtime shared library that `ort` loads at run time.
//!
//! The library core looks only where its caller points: the path given to
//! [`ClassifierBuilder::ort_library`](crate::classifier::ClassifierBuilder::ort_library), else the file named
//! by `ORT_DYLIB_PATH`, else a `libonnxruntime.so*` next to the executable. It starts no process
//! and knows no build machine's folders. With the `tools` feature, [`locate`] also looks in the
//! project's own copy and a Python `onnxruntime` package, and [`fetch`] installs one.

use std::path::{Path, PathBuf};

#[cfg(feature = "tools")]
mod search;
#[cfg(feature = "tools")]
pub use search::{fetch, locate, project_dir};

/// The ONNX Runtime release whose C API this build uses.
pub const ORT_VERSION: &str = "1.31.1";

/// The environment variable naming the library file explicitly.
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

#[cfg(target_os = "macos")]
const LIB_PREFIX: &str = "libonnxruntime";
#[cfg(not(target_os = "macos"))]
const LIB_PREFIX: &str = "libonnxruntime.so";

/// Why no ONNX Runtime library could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrtLibraryError {
    /// None where it was looked for; the message says where that was.
    #[error("{0}")]
    NotFound(String),
    /// No wheel of ONNX Runtime is known for this machine.
    #[cfg(feature = "tools")]
    #[error("no ONNX Runtime wheel is known for {os}/{arch}")]
    UnknownPlatform {
        /// The operating system (`std::env::consts::OS`).
        os: &'static str,
        /// The processor architecture (`std::env::consts::ARCH`).
        arch: &'static str,
    },
    /// The pip fetch failed.
    #[cfg(feature = "tools")]
    #[error(transparent)]
    Fetch(#[from] crate::wheel::FetchError),
}

/// The newest-looking `libonnxruntime.so*` in `dir`, if any: e.g. a Python `onnxruntime`
/// package's `capi` folder, for an application that knows where that package is.
pub fn in_dir(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(LIB_PREFIX) && !n.contains("providers"))
        })
        .collect();
    // Prefer the fully versioned name (`.so.1.31.1`) over links to it.
    found.sort_by_key(|p| p.as_os_str().len());
    found.pop()
}

/// The library named by `ORT_DYLIB_PATH`, or else one next to the executable; otherwise a
/// sentence saying where it was looked for.
///
/// # Errors
/// When `ORT_DYLIB_PATH` names no file, or it is unset and no library lies next to the
/// executable.
pub fn find() -> Result<PathBuf, OrtLibraryError> {
    if let Some(explicit) = std::env::var_os(ENV_VAR) {
        let path = PathBuf::from(explicit);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(OrtLibraryError::NotFound(format!(
                "{ENV_VAR}={} is not a file",
                path.display()
            )))
        };
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    match exe_dir.as_deref().and_then(in_dir) {
        Some(found) => Ok(found),
        None => Err(OrtLibraryError::NotFound(format!(
            "no libonnxruntime found ({ENV_VAR} unset, none next to the executable{})",
            exe_dir
                .map(|d| format!(" in {}", d.display()))
                .unwrap_or_default()
        ))),
    }
}
