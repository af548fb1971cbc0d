//! A training run's settings: the optimiser, the epochs, what is kept, and how the run is driven
//! (checkpoints, progress, stopping).

use super::*;

/// The optimiser and its own settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Optim {
    /// RMSprop without momentum. `rho` is Keras' moving-average factor. Burn adds `epsilon`
    /// outside the square root, Keras inside: 1e-7 inside is about 3e-4 outside.
    RmsProp { rho: f32, epsilon: f32 },
    /// SGD with (undampened, Keras-style) momentum.
    Sgd { momentum: f64 },
}

/// RMSprop's moving-average factor by default (Keras' `rho`).
pub const RMSPROP_RHO: f32 = 0.9;
/// RMSprop's epsilon by default: Burn adds it outside the square root, Keras (1e-7) inside.
pub const RMSPROP_EPSILON: f32 = 3e-4;
/// SGD's momentum by default (the article's VGG16 run).
pub const SGD_MOMENTUM: f64 = 0.9;

/// Optimiser and schedule; the defaults are the article's CNN settings (RMSprop 1e-4, batch 100).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub optimizer: Optim,
    pub seed: u64,
    /// Batch size used for evaluation (no effect on results).
    pub eval_batch_size: usize,
    /// Stop when the validation loss has not improved for this many epochs (Keras'
    /// `EarlyStopping(patience=...)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// Which epoch's model the run returns (and the pipeline exports).
    #[serde(default)]
    pub keep: Keep,
}

/// Which epoch's model a run returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// The last epoch's.
    #[default]
    Last,
    /// The one with the lowest validation loss (Keras' `restore_best_weights=True`).
    Best,
}

impl Keep {
    /// `keep` as given, else the best epoch's model with a `patience` and the last one without
    /// (Keras' `EarlyStopping` with `restore_best_weights`).
    pub fn given_or_default(keep: Option<Keep>, patience: Option<usize>) -> Keep {
        keep.unwrap_or(if patience.is_some() {
            Keep::Best
        } else {
            Keep::Last
        })
    }
}

impl std::str::FromStr for Keep {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "last" => Ok(Keep::Last),
            "best" => Ok(Keep::Best),
            other => Err(format!("unknown choice {other:?}: expected best or last")),
        }
    }
}

/// Where a run's checkpoints go, how often, and whether it continues from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPlan {
    /// The run's checkpoint folder (`models/<name>.checkpoints`).
    pub dir: PathBuf,
    /// Also checkpoint every this many batches within an epoch (0: at the end of epochs only).
    pub every: usize,
    /// Continue from the newest checkpoint; else start afresh, removing the folder's checkpoints.
    pub resume: bool,
}

/// How a run shows its progress, and how it can be stopped and continued.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Progress bars (on a terminal) or lines (in a log), and a line per epoch.
    pub show_progress: bool,
    /// No checkpoints when `None`.
    pub checkpoints: Option<CheckpointPlan>,
    /// When set (by the caller's Ctrl-C handler, say), the run stops after the current batch,
    /// writing a checkpoint, and returns [`Stopped`].
    pub stop: Option<Arc<AtomicBool>>,
}

impl Control {
    /// Whether a stop has been asked for.
    pub fn stop_requested(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|stop| stop.load(Ordering::SeqCst))
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 5,
            batch_size: 100,
            learning_rate: 1e-4,
            optimizer: Optim::RmsProp {
                rho: RMSPROP_RHO,
                epsilon: RMSPROP_EPSILON,
            },
            seed: 42,
            eval_batch_size: 500,
            patience: None,
            keep: Keep::Last,
        }
    }
}

impl TrainConfig {
    /// Checks every setting: batch sizes and patience at least 1, a finite, non-negative
    /// learning rate, the optimiser's factors in range.
    ///
    /// # Errors
    /// The first setting out of range, by its field (`train.batch_size`, ...).
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("train.batch_size", self.batch_size)?;
        positive("train.eval_batch_size", self.eval_batch_size)?;
        if let Some(patience) = self.patience {
            positive("train.patience", patience)?;
        }
        if !(self.learning_rate.is_finite() && self.learning_rate >= 0.0) {
            return Err(ConfigError::new(
                "train.learning_rate",
                format!("{} is not a finite, non-negative rate", self.learning_rate),
            ));
        }
        match self.optimizer {
            Optim::RmsProp { rho, epsilon } => {
                rate("train.optimizer.rho", f64::from(rho))?;
                if !(epsilon.is_finite() && epsilon > 0.0) {
                    return Err(ConfigError::new(
                        "train.optimizer.epsilon",
                        format!("{epsilon} is not a finite, positive number"),
                    ));
                }
            }
            Optim::Sgd { momentum } => rate("train.optimizer.momentum", momentum)?,
        }
        Ok(())
    }

    /// The article's VGG16 settings: SGD 1e-4 with momentum 0.9, batch 32, 3 epochs.
    pub fn vgg16() -> Self {
        TrainConfig {
            epochs: 3,
            batch_size: 32,
            learning_rate: 1e-4,
            optimizer: Optim::Sgd {
                momentum: SGD_MOMENTUM,
            },
            ..TrainConfig::default()
        }
    }
}
