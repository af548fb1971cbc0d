//! How the binaries drive a run: checkpoints (kept, resumed, removed once the run is done),
//! progress and the stop flag.

use super::*;

/// A run's checkpoints (in `<models>/<name>.checkpoints/`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpointing {
    /// Also checkpoint every this many batches (0: at the end of each epoch only).
    pub every: usize,
    /// Continue from the newest checkpoint instead of starting afresh.
    pub resume: bool,
    /// Keep the checkpoints once the model's files are written. By default they are removed
    /// then, as they only serve to continue a run that did not finish.
    pub keep: bool,
}

/// How the binaries drive a run: progress shown or not, checkpoints, a stop flag.
#[derive(Debug, Clone, Default)]
pub struct Driving {
    pub show_progress: bool,
    /// No checkpoints when `None`.
    pub checkpoints: Option<Checkpointing>,
    /// Set (by a Ctrl-C handler, say) to stop after the current batch with a checkpoint.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Driving {
    /// Removes the run's old checkpoints unless it resumes, before anything runs: a CPU rerun
    /// after a CUDA failure then finds only this run's.
    pub(super) fn start_afresh(&self, models_dir: &Path, name: &str) -> Result<()> {
        if self.checkpoints.is_some_and(|c| !c.resume) {
            crate::checkpoint::Checkpoints::new(checkpoint_dir(models_dir, name)).clear()?;
        }
        Ok(())
    }

    /// Once the run `name` has written its files: removes its checkpoints unless they are to be
    /// kept; the folder that holds them, when kept.
    pub(super) fn finish(&self, models_dir: &Path, name: &str) -> Result<Option<PathBuf>> {
        let Some(checkpointing) = self.checkpoints else {
            return Ok(None);
        };
        let dir = checkpoint_dir(models_dir, name);
        if checkpointing.keep {
            return Ok(dir.is_dir().then_some(dir));
        }
        crate::checkpoint::Checkpoints::new(&dir).clear()?;
        match std::fs::remove_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&dir, e)),
            _ => Ok(None),
        }
    }

    /// The training loop's [`Control`] for the run `name` whose files go to `models_dir`;
    /// `after_cuda_failure` resumes from CUDA's checkpoints whatever was asked.
    pub(super) fn control(
        &self,
        models_dir: &Path,
        name: &str,
        after_cuda_failure: bool,
    ) -> Control {
        Control {
            show_progress: self.show_progress,
            checkpoints: self.checkpoints.map(|c| CheckpointPlan {
                dir: checkpoint_dir(models_dir, name),
                every: c.every,
                resume: c.resume || after_cuda_failure,
            }),
            stop: self.stop.clone(),
        }
    }
}

/// Where the checkpoints of the run `name` go.
pub fn checkpoint_dir(models_dir: &Path, name: &str) -> PathBuf {
    models_dir.join(format!("{name}.checkpoints"))
}
