//! Finding (and fetching) the ONNX Runtime shared library that `ort` loads at run time.
//!
//! Looked for, in order: the file named by `ORT_DYLIB_PATH`; `libonnxruntime.so*` next to the
//! executable; the project's own copy in `runtime/onnxruntime/` (made by [`fetch`]); the
//! `onnxruntime` Python package, when `python3` can import it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The ONNX Runtime release whose C API this build uses.
pub const ORT_VERSION: &str = "1.31.1";

/// The environment variable naming the library file explicitly.
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

#[cfg(target_os = "macos")]
const LIB_PREFIX: &str = "libonnxruntime";
#[cfg(not(target_os = "macos"))]
const LIB_PREFIX: &str = "libonnxruntime.so";

/// The project's own folder for the library, beside the runtime crate's sources.
pub fn project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("onnxruntime")
}

/// The newest-looking `libonnxruntime.so*` in `dir`, if any.
fn in_dir(dir: &Path) -> Option<PathBuf> {
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

fn from_python() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, onnxruntime; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    in_dir(Path::new(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Where the library was found, or a sentence saying where it was looked for.
pub fn find() -> Result<PathBuf, String> {
    if let Some(explicit) = std::env::var_os(ENV_VAR) {
        let path = PathBuf::from(explicit);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{ENV_VAR}={} is not a file", path.display()))
        };
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    if let Some(found) = exe_dir.as_deref().and_then(in_dir) {
        return Ok(found);
    }
    if let Some(found) = in_dir(&project_dir()) {
        return Ok(found);
    }
    if let Some(found) = from_python() {
        return Ok(found);
    }
    Err(format!(
        "no libonnxruntime found ({ENV_VAR} unset; none next to the executable, in {}, or in a Python onnxruntime package); \
         `runtime fetch-ort` installs ONNX Runtime {ORT_VERSION} there",
        project_dir().display()
    ))
}

/// The wheel platform tag of this machine, for `pip download`.
fn wheel_platform() -> Result<&'static str, String> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Ok("manylinux_2_28_x86_64"),
        ("linux", "aarch64") => Ok("manylinux_2_28_aarch64"),
        (os, arch) => Err(format!("no ONNX Runtime wheel is known for {os}/{arch}")),
    }
}

/// Downloads the `onnxruntime` wheel of [`ORT_VERSION`] through pip and unpacks its shared
/// library into `dir` (the project folder when `None`). Returns the library's path.
pub fn fetch(dir: Option<&Path>) -> Result<PathBuf, String> {
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(project_dir);
    let lib_name = format!("libonnxruntime.so.{ORT_VERSION}");
    let target = dir.join(&lib_name);
    crate::pip::fetch_wheel_file(
        &format!("onnxruntime=={ORT_VERSION}"),
        Some(wheel_platform()?),
        &format!("onnxruntime/capi/{lib_name}"),
        &target,
    )
}
