//! Accuracy on a labelled set: top-1, per class, and the confusion matrix.

use crate::classifier::Classifier;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::scores::argmax;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Accuracy figures of one model on one labelled set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    /// Images evaluated.
    pub samples: usize,
    /// Fraction of images whose top-1 class is their label.
    pub accuracy: f64,
    /// Per class: correct / images of that class (`None` when the set has none of it).
    pub per_class: Vec<Option<f64>>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Class names, indexed by label.
    pub classes: Vec<String>,
    /// `samples x classes` probabilities, row-major (not serialized).
    #[serde(skip)]
    pub probabilities: Vec<f32>,
    /// Seconds the engine took.
    pub seconds: f64,
}

impl Evaluation {
    /// Scores `[samples, classes]` probabilities (or logits) against `labels`.
    pub fn from_scores(
        scores: Vec<f32>,
        labels: &[u8],
        classes: &[String],
        seconds: f64,
    ) -> Result<Self> {
        let n = classes.len();
        if n == 0 || scores.len() != labels.len() * n {
            return Err(Error::DataMismatch(format!(
                "{} scores for {} images of {n} classes",
                scores.len(),
                labels.len()
            )));
        }
        if let Some((i, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| usize::from(l) >= n)
        {
            return Err(Error::DataMismatch(format!(
                "image {i} has label {label}, but there are only {n} classes"
            )));
        }
        let mut confusion = vec![vec![0usize; n]; n];
        for (row, &label) in scores.chunks_exact(n).zip(labels) {
            confusion[usize::from(label)][argmax(row)] += 1;
        }
        let correct: usize = (0..n).map(|i| confusion[i][i]).sum();
        let per_class = confusion
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let total: usize = row.iter().sum();
                (total > 0).then(|| row[i] as f64 / total as f64)
            })
            .collect();
        Ok(Evaluation {
            samples: labels.len(),
            accuracy: correct as f64 / labels.len().max(1) as f64,
            per_class,
            confusion,
            classes: classes.to_vec(),
            probabilities: scores,
            seconds,
        })
    }

    /// A printable report: accuracy, per-class accuracy and the confusion matrix.
    pub fn report(&self) -> String {
        let mut s = format!(
            "accuracy {:.2} % on {} images\n\n",
            100.0 * self.accuracy,
            self.samples
        );
        let width = self
            .classes
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(5)
            .max(5);
        s += &format!(
            "{:>width$}  {:>8}  confusion (rows: true, columns: predicted)\n",
            "class", "acc %"
        );
        for (i, row) in self.confusion.iter().enumerate() {
            let acc = self.per_class[i].map_or("-".to_string(), |a| format!("{:.1}", 100.0 * a));
            s += &format!("{:>width$}  {acc:>8}  ", self.classes[i]);
            s += &row.iter().map(|c| format!("{c:>5}")).collect::<String>();
            s.push('\n');
        }
        s
    }
}

/// Runs every image of `set` through `classifier` in batches of `batch`, resized first (as
/// [`Dataset::resized`]) when the model takes another size.
///
/// # Errors
/// When the model's input is not square, its class count differs from the set's, or the engine
/// fails.
pub fn evaluate(classifier: &mut Classifier, set: &Dataset, batch: usize) -> Result<Evaluation> {
    let config = classifier.input_config();
    if config.height != config.width {
        return Err(Error::DataMismatch(format!(
            "the model takes {}x{} images; a data set of square images needs a square input",
            config.height, config.width
        )));
    }
    // A model trained on upscaled images sees the set upscaled the same way.
    let resized;
    let set = if config.height == set.side {
        set
    } else {
        resized = set.resized(config.height);
        &resized
    };
    let start = Instant::now();
    let mut probabilities = Vec::with_capacity(set.len() * set.classes.len());
    for chunk in set.pixels.chunks(batch.max(1) * set.image_len()) {
        let batch_len = chunk.len() / set.image_len();
        let input = classifier.input_config().tensor_from_planar(chunk);
        probabilities.extend(classifier.run_tensor(&input, batch_len)?);
    }
    let classes = probabilities.len() / set.len().max(1);
    if classes != set.classes.len() {
        return Err(Error::DataMismatch(format!(
            "the model has {classes} outputs but the set has {} classes",
            set.classes.len()
        )));
    }
    Evaluation::from_scores(
        probabilities,
        &set.labels,
        &set.classes,
        start.elapsed().as_secs_f64(),
    )
}
