//! What a bad setting is (a leaf: it imports no other module of the crate).
//!
//! Each configuration struct checks itself (`validate`) once, where the library takes it in, and
//! names the field that is wrong; the binaries map flags onto the structs and add nothing.

/// A setting that cannot be used: which field (`train.batch_size`, `model.dropout_conv`, ...) and
/// why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A rate in `[0, 1)` (dropout), else the error for `field`.
pub fn rate(field: &str, value: f64) -> Result<(), ConfigError> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(field, format!("{value} is not in [0, 1)")))
    }
}

/// At least 1, else the error for `field`.
pub fn positive(field: &str, value: usize) -> Result<(), ConfigError> {
    if value >= 1 {
        Ok(())
    } else {
        Err(ConfigError::new(field, "must be at least 1"))
    }
}
