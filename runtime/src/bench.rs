//! Timing a model on generated input, as `runtime bench` reports it: the median of several runs
//! per batch size, after one run that is not counted (plans, caches, threads), and the process's
//! peak memory.

use crate::classifier::Classifier;
use crate::error::Result;

/// One batch size's timing.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Timing {
    /// Images per run.
    pub batch: usize,
    /// Runs timed (after one that is not).
    pub runs: usize,
    /// The median of the runs' seconds.
    pub median_seconds: f64,
}

impl Timing {
    /// Images per second at the median run.
    pub fn images_per_second(&self) -> f64 {
        self.batch as f64 / self.median_seconds
    }
}

/// The same input every time, for every engine: values in `[-1, 1)` spread over the tensor.
fn input(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i as u64 * 7919) % 2000) as f32 / 1000.0 - 1.0)
        .collect()
}

/// Times `classifier` at each of `batches` (0 counts as 1): one run first, uncounted, then the
/// median of `runs` (at least 1).
///
/// # Errors
/// When the engine fails.
pub fn time_batches(
    classifier: &mut Classifier,
    batches: &[usize],
    runs: usize,
) -> Result<Vec<Timing>> {
    let runs = runs.max(1);
    batches
        .iter()
        .map(|&batch| {
            let batch = batch.max(1);
            let tensor = input(classifier.input_config().shape(batch).iter().product());
            classifier.run_tensor(&tensor, batch)?;
            let mut seconds: Vec<f64> = (0..runs)
                .map(|_| {
                    let start = std::time::Instant::now();
                    classifier
                        .run_tensor(&tensor, batch)
                        .map(|_| start.elapsed().as_secs_f64())
                })
                .collect::<Result<_>>()?;
            seconds.sort_by(f64::total_cmp);
            Ok(Timing {
                batch,
                runs,
                median_seconds: seconds[seconds.len() / 2],
            })
        })
        .collect()
}

/// The process's peak resident set size in KiB, where the system says (Linux: `VmHWM` in
/// `/proc/self/status`).
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
