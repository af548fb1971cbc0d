//! The tools layer's search for ONNX Runtime: besides [`find`]'s places, the project's own copy
//! (made by [`fetch`]) and the `onnxruntime` Python package, when `python3` can import it; and
//! fetching the library through pip.

use super::{find, in_dir, OrtLibraryError, ORT_VERSION};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The project's own folder for the library, beside the runtime crate's sources.
pub fn project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("onnxruntime")
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

/// Where the library was found: [`find`]'s places (`ORT_DYLIB_PATH`, next to the executable),
/// then the project's copy, then a Python `onnxruntime` package; otherwise a sentence saying
/// where it was looked for and how to install it.
///
/// # Errors
/// When none of those places has the library.
pub fn locate() -> Result<PathBuf, OrtLibraryError> {
    let core = match find() {
        Ok(found) => return Ok(found),
        Err(why) => why,
    };
    if std::env::var_os(super::ENV_VAR).is_some() {
        return Err(core);
    }
    if let Some(found) = in_dir(&project_dir()) {
        return Ok(found);
    }
    if let Some(found) = from_python() {
        return Ok(found);
    }
    Err(OrtLibraryError::NotFound(format!(
        "{core}, nor in {} or a Python onnxruntime package; `runtime fetch-ort` installs ONNX Runtime {ORT_VERSION} there",
        project_dir().display()
    )))
}

/// The wheel platform tag of this machine, for `pip download`.
fn wheel_platform() -> Result<&'static str, OrtLibraryError> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Ok("manylinux_2_28_x86_64"),
        ("linux", "aarch64") => Ok("manylinux_2_28_aarch64"),
        (os, arch) => Err(OrtLibraryError::UnknownPlatform { os, arch }),
    }
}

/// Downloads the `onnxruntime` wheel of [`ORT_VERSION`] through pip and unpacks its shared
/// library into `dir` (the project folder when `None`). Returns the library's path.
///
/// # Errors
/// When no wheel is known for this machine, or pip's download or the unpacking fails.
pub fn fetch(dir: Option<&Path>) -> Result<PathBuf, OrtLibraryError> {
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(project_dir);
    let lib_name = format!("libonnxruntime.so.{ORT_VERSION}");
    let target = dir.join(&lib_name);
    Ok(crate::wheel::fetch_wheel_file(
        &format!("onnxruntime=={ORT_VERSION}"),
        Some(wheel_platform()?),
        &format!("onnxruntime/capi/{lib_name}"),
        &target,
    )?)
}
