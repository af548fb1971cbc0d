//! What each fuzz target does with its input, shared with the regression tests that replay the
//! saved inputs on stable Rust (`runtime/tests/fuzz_regressions.rs` and
//! `trainer/tests/fuzz_regressions.rs` include these files).
//!
//! Each function feeds untrusted bytes to one reader and must return: an `Err` is a fine
//! outcome; a panic, an abort, a hang or an unbounded allocation is a bug.

mod runtime_targets;
pub use runtime_targets::*;

#[cfg(feature = "trainer")]
mod trainer_targets;
#[cfg(feature = "trainer")]
pub use trainer_targets::*;
