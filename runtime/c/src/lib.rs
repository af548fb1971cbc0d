//! The runtime's classifier behind a C ABI: `libcifar_onnx.so` / `libcifar_onnx.a` and
//! `include/cifar_onnx.h` (made from this crate by cbindgen; `runtime/c/test.sh` checks that the
//! committed header is current).
//!
//! Every function catches panics and returns a [`CifarStatus`]; the message of the last failure on
//! the calling thread is [`cifar_last_error`]. Every object the library hands out has its free
//! function, and every pointer argument is checked for null. A classifier may be shared between
//! threads: its calls take turns (open one classifier per thread to classify in parallel).

// A C ABI reads and writes through the caller's pointers, which needs `unsafe`: every such use
// is in this crate, after a null check (boundary.rs), with the length the caller gave.
//
// The file is the C functions, one concern: each maps a C call onto the runtime and documents its
// contract for the header, which is most of its length; how a call crosses the boundary (status,
// message, pointer checks) is in boundary.rs.
#![allow(unsafe_code)]

mod boundary;

pub use boundary::CifarStatus;
use boundary::{
    bytes_arg, c_string, call, free_box, obj, obj_mut, out_arg, str_arg, Failure, LAST_ERROR,
};
use runtime::{Classifier, EngineChoice, Error, Prediction};
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Once};

/// The library's version, e.g. `"0.1.0"` (a static string: do not free it).
#[no_mangle]
pub extern "C" fn cifar_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The message of the last call that failed on this thread, naming the file and the problem
/// (an empty string when none has failed). It stays valid until the next failing call on this
/// thread; do not free it.
#[no_mangle]
pub extern "C" fn cifar_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Keeps the panics that the library catches and returns as errors (tract panics on some
/// malformed models) off stderr, so that the returned error is all a user sees. It installs a
/// panic hook for the process, once, that hands every other panic to the hook before it; call it
/// at start-up if you want it (the library changes nothing by itself).
#[no_mangle]
pub extern "C" fn cifar_quiet_caught_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::panic::set_hook(runtime::panic_hook(std::panic::take_hook())));
}

/// How to open a classifier. Made by [`cifar_options_new`], freed by [`cifar_options_free`].
pub struct CifarOptions {
    engine: EngineChoice,
    threads: Option<usize>,
    ort_library: Option<PathBuf>,
}

/// New options: engine `auto` (ONNX Runtime where it loads, else tract), the engine's default
/// threads, ONNX Runtime from `ORT_DYLIB_PATH` or beside the program. Never null.
#[no_mangle]
pub extern "C" fn cifar_options_new() -> *mut CifarOptions {
    Box::into_raw(Box::new(CifarOptions {
        engine: EngineChoice::Auto,
        threads: None,
        ort_library: None,
    }))
}

/// Frees options (null is allowed and does nothing).
///
/// # Safety
/// `options` is null or came from [`cifar_options_new`] and is not used again.
#[no_mangle]
pub unsafe extern "C" fn cifar_options_free(options: *mut CifarOptions) {
    // SAFETY: made by cifar_options_new, by the caller's contract.
    unsafe { free_box(options) }
}

/// Which engine runs the model: `"auto"`, `"ort"` or `"tract"`.
///
/// # Safety
/// `options` is null or live; `engine` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn cifar_options_set_engine(
    options: *mut CifarOptions,
    engine: *const c_char,
) -> CifarStatus {
    call(|| {
        // SAFETY: null or live by the caller's contract.
        let options = unsafe { obj_mut(options, "options") }?;
        // SAFETY: as documented.
        let engine = unsafe { str_arg(engine, "engine") }?;
        options.engine = engine.parse().map_err(Failure::invalid)?;
        Ok(())
    })
}

/// Threads the engine may use for one model run, 1 to 256; 0 means the engine's default.
///
/// # Safety
/// `options` is null or live.
#[no_mangle]
pub unsafe extern "C" fn cifar_options_set_threads(
    options: *mut CifarOptions,
    threads: usize,
) -> CifarStatus {
    call(|| {
        // SAFETY: null or live by the caller's contract.
        let options = unsafe { obj_mut(options, "options") }?;
        if threads > 256 {
            return Err(Failure::invalid(format!(
                "threads: {threads} is more than 256"
            )));
        }
        options.threads = (threads > 0).then_some(threads);
        Ok(())
    })
}

/// The ONNX Runtime shared library to load (`libonnxruntime.so.<version>`), for engines `auto`
/// and `ort`.
///
/// # Safety
/// `options` is null or live; `path` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn cifar_options_set_ort_library(
    options: *mut CifarOptions,
    path: *const c_char,
) -> CifarStatus {
    call(|| {
        // SAFETY: null or live by the caller's contract.
        let options = unsafe { obj_mut(options, "options") }?;
        // SAFETY: as documented.
        options.ort_library = Some(unsafe { str_arg(path, "path") }?.into());
        Ok(())
    })
}

/// One class of a result.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CifarClass {
    /// The class's index in the model's output.
    pub index: usize,
    /// Its name (the index as text where the model names none); owned by the result.
    pub label: *const c_char,
    /// Its probability, 0 to 1.
    pub probability: f32,
}

/// The most probable classes of one image, most probable first, or why there are none (in a
/// batch). Freed by [`cifar_result_free`].
pub struct CifarResult {
    status: CifarStatus,
    error: Option<CString>,
    /// Keeps the strings `classes` point to.
    _labels: Vec<CString>,
    classes: Vec<CifarClass>,
}

/// What the model is and how images are prepared for it. Its strings belong to the classifier
/// and live as long as it does.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CifarModelInfo {
    /// The model's file (or the name it was opened with).
    pub model: *const c_char,
    /// The engine that runs it: `"ort"` or `"tract"`.
    pub engine: *const c_char,
    /// The execution provider that runs it (`"cpu"`, `"cuda"`, ...).
    pub provider: *const c_char,
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// How many classes the model tells apart (0 when the file does not say).
    pub num_classes: usize,
    /// `"NCHW"` or `"NHWC"`.
    pub layout: *const c_char,
    /// `"RGB"` or `"BGR"`.
    pub channel_order: *const c_char,
    /// Multiplier applied to 0..255 pixel values.
    pub scale: f32,
    /// Subtracted after scaling, per channel in the model's order.
    pub mean: [f32; 3],
    /// Divided by last, per channel in the model's order.
    pub std: [f32; 3],
    /// The quantized variant (`"int8-weights"`, `"int8-static"`, `"fp16"`), or null for float32.
    pub variant: *const c_char,
}

/// A loaded model. Opened by [`cifar_classifier_open`] or [`cifar_classifier_open_bytes`], freed
/// by [`cifar_classifier_free`].
pub struct CifarClassifier {
    inner: Mutex<Classifier>,
    /// Class names, by index (the index as text where the model names none).
    labels: Vec<CString>,
    /// Keeps the strings `info` points to.
    _strings: InfoStrings,
    info: CifarModelInfo,
    description: String,
}

/// The strings a [`CifarModelInfo`] points to (a `CString`'s bytes stay where they are when it
/// moves).
struct InfoStrings {
    model: CString,
    engine: CString,
    provider: CString,
    layout: CString,
    channel_order: CString,
    variant: Option<CString>,
}

// SAFETY: the raw pointers in `info` point into `_strings`, which the classifier owns and never
// changes after it is made; the classifier itself is behind a mutex.
unsafe impl Send for CifarClassifier {}
// SAFETY: as above: shared access only reads the fixed strings or takes the mutex.
unsafe impl Sync for CifarClassifier {}

impl CifarClassifier {
    fn new(inner: Classifier) -> Self {
        let d = inner.describe();
        let classes = d.num_classes.unwrap_or(0);
        let labels = (0..classes)
            .map(|i| {
                let name = d.classes.as_ref().and_then(|c| c.get(i));
                c_string(&name.cloned().unwrap_or_else(|| i.to_string()))
            })
            .collect();
        let strings = InfoStrings {
            model: c_string(&d.model),
            engine: c_string(&d.engine),
            provider: c_string(&d.provider),
            layout: c_string(d.input.layout.as_str()),
            channel_order: c_string(d.input.channel_order.as_str()),
            variant: d.variant.as_deref().map(c_string),
        };
        let info = CifarModelInfo {
            model: strings.model.as_ptr(),
            engine: strings.engine.as_ptr(),
            provider: strings.provider.as_ptr(),
            width: d.input.width as u32,
            height: d.input.height as u32,
            num_classes: classes,
            layout: strings.layout.as_ptr(),
            channel_order: strings.channel_order.as_ptr(),
            scale: d.input.scale,
            mean: d.input.mean,
            std: d.input.std,
            variant: strings
                .variant
                .as_ref()
                .map_or(std::ptr::null(), |v| v.as_ptr()),
        };
        CifarClassifier {
            inner: Mutex::new(inner),
            labels,
            _strings: strings,
            info,
            description: d.to_json(),
        }
    }

    /// The classifier, for one call: calls on one classifier take turns.
    fn lock(&self) -> MutexGuard<'_, Classifier> {
        // A panic inside a call is caught and reported; the classifier stays usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The `top_k` most probable classes of one image's probabilities.
    fn result(&self, prediction: &Prediction, top_k: usize) -> CifarResult {
        let top = prediction.top_k(top_k);
        let labels: Vec<CString> = top
            .iter()
            .map(|&(i, _)| {
                self.labels
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| c_string(&i.to_string()))
            })
            .collect();
        let classes = top
            .iter()
            .zip(&labels)
            .map(|(&(index, probability), label)| CifarClass {
                index,
                label: label.as_ptr(),
                probability,
            })
            .collect();
        CifarResult {
            status: CifarStatus::Ok,
            error: None,
            _labels: labels,
            classes,
        }
    }
}

impl CifarResult {
    /// The result of an image of a batch that could not be classified.
    fn failed(failure: Failure) -> Self {
        CifarResult {
            status: failure.status,
            error: Some(c_string(&failure.message)),
            _labels: Vec::new(),
            classes: Vec::new(),
        }
    }
}

fn open(
    bytes: &[u8],
    name: &Path,
    options: Option<&CifarOptions>,
) -> Result<*mut CifarClassifier, Failure> {
    let mut builder = Classifier::builder();
    if let Some(o) = options {
        builder = builder.engine(o.engine);
        if let Some(n) = o.threads {
            builder = builder.threads(n);
        }
        if let Some(path) = &o.ort_library {
            builder = builder.ort_library(path);
        }
    }
    let classifier = builder.build_from_bytes(bytes, name)?;
    Ok(Box::into_raw(Box::new(CifarClassifier::new(classifier))))
}

/// Opens the ONNX model at `path` with `options` (null: the defaults). On success `*out` is the
/// classifier; on failure it is null and the status and [`cifar_last_error`] say why, naming the
/// file.
///
/// # Safety
/// `path` is null or a NUL-terminated string; `options` is null or live; `out` is null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn cifar_classifier_open(
    path: *const c_char,
    options: *const CifarOptions,
    out: *mut *mut CifarClassifier,
) -> CifarStatus {
    call(|| {
        // SAFETY (all three): as documented.
        let out = unsafe { out_arg(out, "out") }?;
        let path = Path::new(unsafe { str_arg(path, "path") }?);
        let options = unsafe { options.as_ref() };
        let bytes = std::fs::read(path).map_err(|source| {
            Failure::from(Error::Io {
                path: path.to_path_buf(),
                source,
            })
        })?;
        *out = open(&bytes, path, options)?;
        Ok(())
    })
}

/// Opens an ONNX model held in memory (`len` bytes at `bytes`, which the library copies what it
/// needs of); `name` names it in messages. Otherwise as [`cifar_classifier_open`].
///
/// # Safety
/// `bytes` is null or `len` readable bytes; `name` is null or a NUL-terminated string; `options`
/// is null or live; `out` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn cifar_classifier_open_bytes(
    bytes: *const u8,
    len: usize,
    name: *const c_char,
    options: *const CifarOptions,
    out: *mut *mut CifarClassifier,
) -> CifarStatus {
    call(|| {
        // SAFETY (all four): as documented.
        let out = unsafe { out_arg(out, "out") }?;
        let bytes = unsafe { bytes_arg(bytes, len, "bytes") }?;
        let name = unsafe { str_arg(name, "name") }?;
        let options = unsafe { options.as_ref() };
        *out = open(bytes, Path::new(name), options)?;
        Ok(())
    })
}

/// Frees a classifier (null is allowed and does nothing). No other call may be using it.
///
/// # Safety
/// `classifier` is null or came from an open function and is not used again.
#[no_mangle]
pub unsafe extern "C" fn cifar_classifier_free(classifier: *mut CifarClassifier) {
    // SAFETY: made by `open`, by the caller's contract. A panic while dropping the engine must
    // not cross into C.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe { free_box(classifier) }));
}

/// Fills `*out` with what the model is and how images are prepared for it.
///
/// # Safety
/// `classifier` is null or live; `out` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn cifar_classifier_info(
    classifier: *const CifarClassifier,
    out: *mut CifarModelInfo,
) -> CifarStatus {
    call(|| {
        // SAFETY (both): as documented.
        let c = unsafe { obj(classifier, "classifier") }?;
        let out = unsafe { obj_mut(out, "out") }?;
        *out = c.info;
        Ok(())
    })
}

/// The name of class `index` (the index as text where the model names none), owned by the
/// classifier; null when `classifier` is null or `index` is not a class.
///
/// # Safety
/// `classifier` is null or live.
#[no_mangle]
pub unsafe extern "C" fn cifar_classifier_class_name(
    classifier: *const CifarClassifier,
    index: usize,
) -> *const c_char {
    // SAFETY: null or live by the caller's contract.
    match unsafe { classifier.as_ref() }.and_then(|c| c.labels.get(index)) {
        Some(label) => label.as_ptr(),
        None => std::ptr::null(),
    }
}

/// Everything the library knows of the model, as one line of JSON (input name and shape,
/// preprocessing, class names, variant, opset, engine and provider). Free it with
/// [`cifar_string_free`]; null when `classifier` is null.
///
/// # Safety
/// `classifier` is null or live.
#[no_mangle]
pub unsafe extern "C" fn cifar_classifier_describe(
    classifier: *const CifarClassifier,
) -> *mut c_char {
    // SAFETY: null or live by the caller's contract.
    match unsafe { classifier.as_ref() } {
        Some(c) => c_string(&c.description).into_raw(),
        None => std::ptr::null_mut(),
    }
}

/// Frees a string the library made (null is allowed and does nothing).
///
/// # Safety
/// `s` is null or came from [`cifar_classifier_describe`] and is not used again.
#[no_mangle]
pub unsafe extern "C" fn cifar_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: made by CString::into_raw, freed once by the caller's contract.
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Classifies one encoded image (PNG, JPEG, BMP, GIF or WebP; `len` bytes at `bytes`), resized
/// as the model's preprocessing says; `name` names it in messages. On success `*out` holds its
/// `top_k` most probable classes (at least 1); on failure it is null.
///
/// # Safety
/// `classifier` is null or live; `bytes` is null or `len` readable bytes; `name` is null or a
/// NUL-terminated string; `out` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn cifar_classify_encoded(
    classifier: *const CifarClassifier,
    bytes: *const u8,
    len: usize,
    name: *const c_char,
    top_k: usize,
    out: *mut *mut CifarResult,
) -> CifarStatus {
    call(|| {
        // SAFETY (all): as documented.
        let out = unsafe { out_arg(out, "out") }?;
        let c = unsafe { obj(classifier, "classifier") }?;
        let bytes = unsafe { bytes_arg(bytes, len, "bytes") }?;
        let name = unsafe { str_arg(name, "name") }?;
        let prediction = c.lock().classify_bytes(bytes, name)?;
        *out = Box::into_raw(Box::new(c.result(&prediction, top_k)));
        Ok(())
    })
}

/// Classifies one image given as 8-bit RGB pixels: `height` rows of `width` pixels, each row
/// `stride` bytes after the one before (`stride >= 3 * width`), in a buffer of `len` bytes. It is
/// resized as encoded images are. Otherwise as [`cifar_classify_encoded`]; a buffer too small for
/// its sizes is `CIFAR_STATUS_BAD_INPUT`.
///
/// # Safety
/// `classifier` is null or live; `pixels` is null or `len` readable bytes; `out` is null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn cifar_classify_rgb8(
    classifier: *const CifarClassifier,
    pixels: *const u8,
    len: usize,
    width: u32,
    height: u32,
    stride: usize,
    top_k: usize,
    out: *mut *mut CifarResult,
) -> CifarStatus {
    call(|| {
        // SAFETY (all): as documented.
        let out = unsafe { out_arg(out, "out") }?;
        let c = unsafe { obj(classifier, "classifier") }?;
        let pixels = unsafe { bytes_arg(pixels, len, "pixels") }?;
        let prediction = c
            .lock()
            .classify_rgb8(pixels, width as usize, height as usize, stride)?;
        *out = Box::into_raw(Box::new(c.result(&prediction, top_k)));
        Ok(())
    })
}

/// One encoded image of a batch.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CifarImage {
    /// The encoded bytes (PNG, JPEG, BMP, GIF or WebP).
    pub bytes: *const u8,
    /// How many.
    pub len: usize,
    /// Its name in messages (a file name, say).
    pub name: *const c_char,
}

/// The most images one batch call runs through the model at once; longer batches run in parts.
const MAX_RUN: usize = 64;

/// Classifies `count` encoded images, running them through the model together. `results` must
/// have room for `count` pointers: each gets a result, which says by itself whether that image
/// was classified ([`cifar_result_status`], [`cifar_result_error`]), so one bad image does not
/// stop the rest. The call fails only for bad arguments (then every slot is null) or when the
/// model run itself fails.
///
/// # Safety
/// `classifier` is null or live; `images` is null or `count` readable [`CifarImage`]s whose
/// pointers follow [`cifar_classify_encoded`]'s rules; `results` is null or room for `count`
/// pointers.
#[no_mangle]
pub unsafe extern "C" fn cifar_classify_batch(
    classifier: *const CifarClassifier,
    images: *const CifarImage,
    count: usize,
    top_k: usize,
    results: *mut *mut CifarResult,
) -> CifarStatus {
    call(|| {
        if results.is_null() {
            return Err(Failure::invalid("results is null"));
        }
        // SAFETY: not null, room for `count` pointers by the caller's contract.
        let slots = unsafe { std::slice::from_raw_parts_mut(results, count) };
        slots.fill(std::ptr::null_mut());
        // SAFETY (both): as documented.
        let c = unsafe { obj(classifier, "classifier") }?;
        if images.is_null() {
            return Err(Failure::invalid("images is null"));
        }
        // SAFETY: not null, `count` images by the caller's contract.
        let images = unsafe { std::slice::from_raw_parts(images, count) };
        let mut out: Vec<CifarResult> = Vec::with_capacity(count);
        let mut classifier = c.lock();
        for part in images.chunks(MAX_RUN) {
            // Each image prepared on its own; those that fail keep their error.
            let mut prepared: Vec<Result<Vec<f32>, Failure>> = Vec::with_capacity(part.len());
            for (i, image) in part.iter().enumerate() {
                let at = out.len() + i;
                // SAFETY: as documented for each image.
                let name = unsafe { str_arg(image.name, &format!("images[{at}].name")) };
                let bytes =
                    unsafe { bytes_arg(image.bytes, image.len, &format!("images[{at}].bytes")) };
                prepared.push(match (name, bytes) {
                    (Ok(name), Ok(bytes)) => {
                        classifier.prepare_bytes(bytes, name).map_err(Failure::from)
                    }
                    (Err(e), _) | (_, Err(e)) => Err(e),
                });
            }
            // The prepared ones run through the model together.
            let ready = prepared.iter().filter(|p| p.is_ok()).count();
            let input: Vec<f32> = prepared.iter().flatten().flatten().copied().collect();
            let mut predictions = if ready > 0 {
                classifier.classify_tensor(&input, ready)?.into_iter()
            } else {
                Vec::new().into_iter()
            };
            for p in prepared {
                let prediction = p.and_then(|_| {
                    predictions.next().ok_or_else(|| Failure {
                        status: CifarStatus::Engine,
                        message: "the model gave fewer predictions than images".into(),
                    })
                });
                out.push(match prediction {
                    Ok(prediction) => c.result(&prediction, top_k),
                    Err(f) => CifarResult::failed(f),
                });
            }
        }
        for (slot, result) in slots.iter_mut().zip(out) {
            *slot = Box::into_raw(Box::new(result));
        }
        Ok(())
    })
}

/// Whether the result's image was classified (`CIFAR_STATUS_OK`) or why not (in a batch);
/// `CIFAR_STATUS_INVALID_ARGUMENT` for a null result.
///
/// # Safety
/// `result` is null or live.
#[no_mangle]
pub unsafe extern "C" fn cifar_result_status(result: *const CifarResult) -> CifarStatus {
    // SAFETY: null or live by the caller's contract.
    unsafe { result.as_ref() }.map_or(CifarStatus::InvalidArgument, |r| r.status)
}

/// Why the result's image was not classified, naming it; null when it was (or `result` is null).
/// Owned by the result.
///
/// # Safety
/// `result` is null or live.
#[no_mangle]
pub unsafe extern "C" fn cifar_result_error(result: *const CifarResult) -> *const c_char {
    // SAFETY: null or live by the caller's contract.
    unsafe { result.as_ref() }
        .and_then(|r| r.error.as_ref())
        .map_or(std::ptr::null(), |e| e.as_ptr())
}

/// How many classes the result holds (0 for an image that was not classified or a null result).
///
/// # Safety
/// `result` is null or live.
#[no_mangle]
pub unsafe extern "C" fn cifar_result_count(result: *const CifarResult) -> usize {
    // SAFETY: null or live by the caller's contract.
    unsafe { result.as_ref() }.map_or(0, |r| r.classes.len())
}

/// Fills `*out` with the result's `index`-th most probable class (0 is the top-1).
///
/// # Safety
/// `result` is null or live; `out` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn cifar_result_class(
    result: *const CifarResult,
    index: usize,
    out: *mut CifarClass,
) -> CifarStatus {
    call(|| {
        // SAFETY (both): as documented.
        let r = unsafe { obj(result, "result") }?;
        let out = unsafe { obj_mut(out, "out") }?;
        *out = *r.classes.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "index {index}: the result holds {} classes",
                r.classes.len()
            ))
        })?;
        Ok(())
    })
}

/// Frees a result (null is allowed and does nothing).
///
/// # Safety
/// `result` is null or came from a classify call and is not used again.
#[no_mangle]
pub unsafe extern "C" fn cifar_result_free(result: *mut CifarResult) {
    // SAFETY: made by a classify call, by the caller's contract.
    unsafe { free_box(result) }
}
