//! How a call crosses the C boundary: its status and the thread's last message, panics caught,
//! and the checks on every pointer the caller hands in.

use runtime::Error;
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a call did. `CIFAR_STATUS_OK` is 0; every other value comes with a message
/// (`cifar_last_error`).
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
pub(crate) struct Failure {
    pub(crate) status: CifarStatus,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
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
    pub(crate) static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// A string for C: interior NUL bytes (which no message should hold) become spaces.
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

pub(crate) fn set_last_error(message: &str) {
    LAST_ERROR.with(|e| *e.borrow_mut() = c_string(message));
}

/// Runs one call: its failure (or a panic) becomes a status and the thread's last error.
pub(crate) fn call(f: impl FnOnce() -> Result<(), Failure>) -> CifarStatus {
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
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
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
pub(crate) unsafe fn bytes_arg<'a>(
    p: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Failure> {
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
pub(crate) unsafe fn out_arg<'a, T>(
    out: *mut *mut T,
    what: &str,
) -> Result<&'a mut *mut T, Failure> {
    // SAFETY: null or writable by the caller's contract.
    let out = unsafe { out.as_mut() }.ok_or_else(|| Failure::invalid(format!("{what} is null")))?;
    *out = std::ptr::null_mut();
    Ok(out)
}

/// A reference to an object this library made.
///
/// # Safety
/// `p` is null or a live object of this library.
pub(crate) unsafe fn obj<'a, T>(p: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: null or live by the caller's contract.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::invalid(format!("{what} is null")))
}

/// A mutable reference to an object this library made, or to a value the caller gave room for.
///
/// # Safety
/// `p` is null or live and writable.
pub(crate) unsafe fn obj_mut<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: null or live by the caller's contract.
    unsafe { p.as_mut() }.ok_or_else(|| Failure::invalid(format!("{what} is null")))
}

/// Frees an object this library handed out as a box (null does nothing).
///
/// # Safety
/// `p` is null or came from `Box::into_raw` here and is not used again.
pub(crate) unsafe fn free_box<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: made by Box::into_raw, freed once by the caller's contract.
        drop(unsafe { Box::from_raw(p) });
    }
}
