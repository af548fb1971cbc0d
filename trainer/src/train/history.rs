//! What a run records: each epoch's figures, the history written beside the model, and the
//! Keras-style summary of a network.

use super::*;

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// Everything a training run produced besides the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    /// The model's configuration, as the model records it.
    pub model: serde_json::Value,
    pub train: TrainConfig,
    pub device: String,
    pub train_images: usize,
    pub test_images: usize,
    /// Seconds spent before the first epoch (e.g. computing the frozen-feature cache).
    #[serde(default)]
    pub setup_seconds: f64,
    pub epochs: Vec<EpochRecord>,
    /// What the user should know about the data (e.g. the test set is the training set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// How many test images are also training images, pixel for pixel (see `warnings`).
    #[serde(default)]
    pub test_images_in_training: usize,
    /// The epoch with the lowest validation loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<usize>,
    /// The epoch whose model the run returned (see [`TrainConfig::keep`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_epoch: Option<usize>,
    /// Training stopped before its last epoch: the validation loss had stopped improving.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped_early: bool,
}

impl History {
    /// The history of a run that has not trained yet.
    pub fn new(model: serde_json::Value, train: &TrainConfig, device: &str) -> Self {
        History {
            model,
            train: train.clone(),
            device: device.to_string(),
            train_images: 0,
            test_images: 0,
            setup_seconds: 0.0,
            epochs: Vec::new(),
            warnings: Vec::new(),
            test_images_in_training: 0,
            best_epoch: None,
            kept_epoch: None,
            stopped_early: false,
        }
    }
}

/// A Keras-style `model.summary()` table.
/// `frozen` of the parameters are not trained.
pub fn format_summary(name: &str, rows: &[(String, String, usize)], frozen: usize) -> String {
    let total: usize = rows.iter().map(|r| r.2).sum();
    let mut s = format!("Model: \"{name}\"\n");
    let line = "_".repeat(72);
    s += &format!(
        "{line}\n{:<34}{:<24}{:>14}\n{}\n",
        "Layer",
        "Output shape",
        "Param #",
        "=".repeat(72)
    );
    for (layer, shape, params) in rows {
        s += &format!("{layer:<34}{shape:<24}{params:>14}\n");
    }
    s += &format!(
        "{}\nTotal params: {total}\nTrainable params: {}\nNon-trainable params: {frozen}\n{line}\n",
        "=".repeat(72),
        total.saturating_sub(frozen)
    );
    s
}

/// Saves the history as pretty JSON, atomically.
pub fn save_history(history: &History, path: &Path) -> Result<()> {
    let json = serde_json::to_vec_pretty(history)?;
    crate::save::write_file(path, &json)
}
