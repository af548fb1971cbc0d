//! One image's classification.

/// One image's classification.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Index of the most probable class.
    pub class: usize,
    /// Its name (the index as text when the model carries no class names).
    pub class_name: String,
    /// Its probability.
    pub probability: f32,
    /// All class probabilities.
    pub probabilities: Vec<f32>,
}

impl Prediction {
    /// The `k` most probable classes, most probable first: `(class, probability)`.
    pub fn top_k(&self, k: usize) -> Vec<(usize, f32)> {
        let mut ranked: Vec<(usize, f32)> =
            self.probabilities.iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(k.max(1));
        ranked
    }
}
