//! The runtime's classifier behind a C ABI: `libcifar_onnx.so` / `libcifar_onnx.a` and
//! `include/cifar_onnx.h` (made from this file by cbindgen; `runtime/c/test.sh` checks that the
//! committed header is current).
//!
//! Every function catches panics and returns a [`CifarStatus`]; the message of the last failure on
//! the calling thread is [`cifar_last_error`]. Every object the library hands out has its free
//! function, and every pointer argument is checked for null. A classifier may be shared between
//! threads: its calls take turns (open one classifier per thread to classify in parallel).

// A C ABI reads and writes through the caller's pointers, which needs `unsafe`: every such use
// is in this file, after a null check, with the length the caller gave.
#![allow(unsafe_code)]

use runtime::{Classifier, EngineChoice, Error};
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Once};

/// What a call did. `CIFAR_STATUS_OK` is 0; every other value comes with a message
/// ([`cifar_last_error`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarStatus {
    /// The call did what it was asked.
    Ok = 0,
    /// A null pointer, a string that is not UTF-8, a value out of range.
    InvalidArgument = 1,
    /// A file could not be read.
    Io = 2,
    /// Not a usable image classifier (or a value in its metadata is unusable).
    BadModel = 3,
    /// An image that cannot be decoded or used.
    BadImage = 4,
    /// Pixels or sizes that do not fit (a buffer too small for its width, height and stride).
    BadInput = 5,
    /// The engine failed to load or run the model.
    Engine = 6,
    /// ONNX Runtime was asked for and could not be loaded.
    OrtUnavailable = 7,
    /// A failure inside the library that it caught (a bug: please report the message).
    Internal = 8,
}

/// A failed call: its status and message.
struct Failure {
    status: CifarStatus,
    message: String,
}

impl Failure {
    fn invalid(message: impl Into<String>) -> Self {
        Failure {
            status: CifarStatus::InvalidArgument,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Io { .. } => CifarStatus::Io,
            Error::BadModel { .. } => CifarStatus::BadModel,
            Error::Image { .. } => CifarStatus::BadImage,
            Error::Engine { .. } => CifarStatus::Engine,
            Error::OrtUnavailable(_) => CifarStatus::OrtUnavailable,
            Error::InputShape { .. }
            | Error::NotWholeImages { .. }
            | Error::Pixels(_)
            | Error::InputConfig(_) => CifarStatus::BadInput,
            _ => CifarStatus::Internal,
        };
        Failure {
            status,
            message: e.to_string(),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// A string for C: interior NUL bytes (which no message should hold) become spaces.
fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

fn set_last_error(message: &str) {
    LAST_ERROR.with(|e| *e.borrow_mut() = c_string(message));
}

/// Runs one call: its failure (or a panic) becomes a status and the thread's last error.
fn call(f: impl FnOnce() -> Result<(), Failure>) -> CifarStatus {
    let failure = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return CifarStatus::Ok,
        Ok(Err(failure)) => failure,
        Err(panic) => Failure {
            status: CifarStatus::Internal,
            message: format!(
                "internal error: {}",
                panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into())
            ),
        },
    };
    set_last_error(&failure.message);
    failure.status
}

/// A string argument: not null, UTF-8.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that outlives the call.
unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::invalid(format!("{what} is null")));
    }
    // SAFETY: not null, and NUL-terminated by the caller's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Failure::invalid(format!("{what} is not UTF-8")))
}

/// A byte-buffer argument: not null (even when empty).
///
/// # Safety
/// `p` is null or points to `len` readable bytes that outlive the call.
unsafe fn bytes_arg<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Failure> {
    if p.is_null() {
        return Err(Failure::invalid(format!("{what} is null")));
    }
    // SAFETY: not null, `len` bytes by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// An output argument: not null; set to null until there is something to put there.
///
/// # Safety
/// `out` is null or points to a writable pointer.
unsafe fn out_arg<'a, T>(out: *mut *mut T, what: &str) -> Result<&'a mut *mut T, Failure> {
    // SAFETY: null or writable by the caller's contract.
    let out = unsafe { out.as_mut() }.ok_or_else(|| Failure::invalid(format!("{what} is null")))?;
    *out = std::ptr::null_mut();
    Ok(out)
}

/// A reference to an object this library made.
///
/// # Safety
/// `p` is null or a live object of this library.
unsafe fn obj<'a, T>(p: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: null or live by the caller's contract.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::invalid(format!("{what} is null")))
}

/// Frees an object this library handed out as a box (null does nothing).
///
/// # Safety
/// `p` is null or came from `Box::into_raw` here and is not used again.
unsafe fn free_box<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: made by Box::into_raw, freed once by the caller's contract.
        drop(unsafe { Box::from_raw(p) });
    }
}

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
        let options =
            unsafe { options.as_mut() }.ok_or_else(|| Failure::invalid("options is null"))?;
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
        let options =
            unsafe { options.as_mut() }.ok_or_else(|| Failure::invalid("options is null"))?;
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
        let options =
            unsafe { options.as_mut() }.ok_or_else(|| Failure::invalid("options is null"))?;
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
    _strings: Vec<CString>,
    info: CifarModelInfo,
    description: String,
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
        let layout = serde_name(&d.input.layout);
        let order = serde_name(&d.input.channel_order);
        let strings: Vec<CString> = [
            Some(&d.model),
            Some(&d.engine),
            Some(&d.provider),
            Some(&layout),
            Some(&order),
            d.variant.as_ref(),
        ]
        .into_iter()
        .map(|s| c_string(s.map(String::as_str).unwrap_or("")))
        .collect();
        let info = CifarModelInfo {
            model: strings[0].as_ptr(),
            engine: strings[1].as_ptr(),
            provider: strings[2].as_ptr(),
            width: d.input.width as u32,
            height: d.input.height as u32,
            num_classes: classes,
            layout: strings[3].as_ptr(),
            channel_order: strings[4].as_ptr(),
            scale: d.input.scale,
            mean: d.input.mean,
            std: d.input.std,
            variant: if d.variant.is_some() {
                strings[5].as_ptr()
            } else {
                std::ptr::null()
            },
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
    fn result(&self, probabilities: &[f32], top_k: usize) -> CifarResult {
        let mut order: Vec<usize> = (0..probabilities.len()).collect();
        order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
        order.truncate(top_k.max(1));
        let labels: Vec<CString> = order
            .iter()
            .map(|&i| {
                self.labels
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| c_string(&i.to_string()))
            })
            .collect();
        let classes = order
            .iter()
            .zip(&labels)
            .map(|(&index, label)| CifarClass {
                index,
                label: label.as_ptr(),
                probability: probabilities[index],
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

/// `"NCHW"`, `"RGB"`: a unit enum's name as the model metadata writes it.
fn serde_name<T: std::fmt::Debug>(value: &T) -> String {
    format!("{value:?}").to_ascii_uppercase()
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
        let out = unsafe { out.as_mut() }.ok_or_else(|| Failure::invalid("out is null"))?;
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
        *out = Box::into_raw(Box::new(c.result(&prediction.probabilities, top_k)));
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
        *out = Box::into_raw(Box::new(c.result(&prediction.probabilities, top_k)));
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
            let ready: Vec<&Vec<f32>> = prepared.iter().filter_map(|p| p.as_ref().ok()).collect();
            let mut probabilities = Vec::new();
            if !ready.is_empty() {
                let input: Vec<f32> = ready.iter().flat_map(|v| v.iter().copied()).collect();
                probabilities = classifier.run_tensor(&input, ready.len())?;
            }
            let per_image = probabilities.len() / ready.len().max(1);
            let mut rows = probabilities.chunks_exact(per_image.max(1));
            for p in prepared {
                out.push(match p {
                    Ok(_) => c.result(rows.next().unwrap_or(&[]), top_k),
                    Err(f) => CifarResult {
                        status: f.status,
                        error: Some(c_string(&f.message)),
                        _labels: Vec::new(),
                        classes: Vec::new(),
                    },
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
        let out = unsafe { out.as_mut() }.ok_or_else(|| Failure::invalid("out is null"))?;
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
