//! The loop itself: epochs of batches and optimiser steps, evaluation after each epoch, the best
//! epoch, early stopping, and the checkpoints a run saves and resumes from.

use super::*;

/// Trains `model` with the optimiser the configuration names, recording the epochs in `history`.
/// Returns the model the configuration keeps (the last or the best epoch's), ready for inference,
/// and its test-set logits (after no epoch at all, the untrained model and its evaluation).
///
/// With checkpoints ([`Fit::control`]), every epoch's end (and every `every` batches) is saved,
/// and a resumed run continues from the newest checkpoint to the same model, bit for bit on the
/// CPU, as an uninterrupted run: the data order of each epoch and each batch's dropout masks
/// depend only on the seed and the batch's place.
///
/// # Errors
/// [`Stopped`] when a stop was asked for; a checkpoint that cannot be written, or one to resume
/// that was made with other data or settings.
pub fn fit<B, M>(
    model: M,
    fit: &Fit<B, M::InnerModule>,
    history: &mut History,
) -> Result<(M::InnerModule, Vec<f32>)>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + Logits<B>,
{
    match fit.config.optimizer {
        Optim::RmsProp { rho, epsilon } => {
            let optim = OptimizerAdaptor::from(ops::rmsprop::RmsProp::new(rho, epsilon));
            fit_with(model, optim, fit, history)
        }
        Optim::Sgd { momentum } => {
            let momentum = (momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(0.0)
            });
            let optim = SgdConfig::new().with_momentum(momentum).init::<B, M>();
            fit_with(model, optim, fit, history)
        }
    }
}

/// The state of a run besides its weights, as a checkpoint keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    /// Fingerprint of the training and test data.
    data: String,
    /// Everything that decides the run's results (see [`settings`]).
    settings: serde_json::Value,
    /// The epochs done.
    epochs: Vec<EpochRecord>,
    /// Running sums of the epoch under way: loss, correct answers, images seen, seconds.
    loss_sum: f32,
    correct: f32,
    seen: usize,
    seconds: f64,
    best: Option<Best>,
    /// Epochs since the best one.
    since_best: usize,
    stopped_early: bool,
}

/// The epoch with the lowest validation loss so far.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Best {
    epoch: usize,
    val_loss: f64,
}

/// What decides a run's results, compared when it resumes: the model, the data's size and the
/// training settings, except the number of epochs (a run may be continued for more) and the
/// evaluation batch size (which changes nothing).
fn settings(history: &History) -> serde_json::Value {
    let mut train = history.train.clone();
    train.epochs = 0;
    train.eval_batch_size = 0;
    serde_json::json!({
        "model": history.model,
        "train": train,
        "train_images": history.train_images,
        "test_images": history.test_images,
    })
}

/// `path: old -> new` for each leaf where `old` and `new` differ.
fn differences(old: &serde_json::Value, new: &serde_json::Value, path: &str) -> Vec<String> {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter()
                .flat_map(|k| {
                    let at = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    differences(
                        a.get(k).unwrap_or(&Value::Null),
                        b.get(k).unwrap_or(&Value::Null),
                        &at,
                    )
                })
                .collect()
        }
        _ if old == new => Vec::new(),
        _ => vec![format!("{path}: {old} in the checkpoint, {new} now")],
    }
}

/// The seed of the backend's generator for batch `index` of `epoch`: each batch's dropout masks
/// depend on the run's seed and where the batch is, not on what ran before, so a resumed run draws
/// the masks an uninterrupted one would.
fn batch_seed(seed: u64, epoch: usize, index: usize) -> u64 {
    Rng::new(seed ^ ((epoch as u64) << 40) ^ index as u64).next()
}

/// A run in progress: the model, the optimiser, the best epoch's model when the run keeps it.
struct Run<'f, B: AutodiffBackend, M: AutodiffModule<B>, O> {
    fit: &'f Fit<'f, B, M::InnerModule>,
    optim: O,
    /// The best epoch's model, when the run keeps the best one.
    best_model: Option<M::InnerModule>,
    state: RunState,
    position: Position,
    checkpoints: Option<(Checkpoints, usize)>,
}

impl<'f, B, M, O> Run<'f, B, M, O>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + Logits<B>,
    O: Optimizer<M, B>,
{
    fn stop_requested(&self) -> bool {
        self.fit.control.stop_requested()
    }

    /// The validation loss has not improved for `patience` epochs.
    fn out_of_patience(&self) -> bool {
        self.fit
            .config
            .patience
            .is_some_and(|patience| self.state.since_best >= patience)
    }

    /// Starts afresh (removing older checkpoints) or, when asked, continues from the newest
    /// checkpoint made with the same data and settings.
    fn start(&mut self, model: M, resume: bool) -> Result<M> {
        let Some((store, _)) = &self.checkpoints else {
            return Ok(model);
        };
        if !resume {
            store.clear()?;
            return Ok(model);
        }
        let (saved, notices) = store.newest()?;
        for notice in notices {
            eprintln!("{notice}");
        }
        let Some(saved) = saved else {
            eprintln!(
                "no checkpoint in {}: starting from the beginning",
                store.dir().display()
            );
            return Ok(model);
        };
        let state: RunState =
            serde_json::from_value(saved.state.clone()).map_err(|e| CheckpointError::Damaged {
                path: saved.path.join("state.json"),
                reason: format!("the run's state: {e}"),
            })?;
        if state.data != self.state.data {
            return Err(Error::OtherRun {
                path: saved.path,
                what: format!(
                    "other data (fingerprint {}, now {})",
                    state.data, self.state.data
                ),
                hint: "start afresh without --resume, or remove the folder",
            });
        }
        let changed = differences(&state.settings, &self.state.settings, "");
        if !changed.is_empty() {
            return Err(Error::OtherRun {
                path: saved.path,
                what: format!("other settings ({})", changed.join("; ")),
                hint: "resume with those, or start afresh without --resume",
            });
        }
        let asked = Position {
            epoch: self.fit.config.epochs,
            batch: 0,
        };
        if saved.position > asked {
            return Err(Error::OtherRun {
                path: saved.path,
                what: format!(
                    "a run already past the {} epochs asked for now ({})",
                    asked.epoch, saved.position
                ),
                hint: "resume with at least as many epochs, or start afresh without --resume",
            });
        }
        let device = self.fit.device;
        let model = model.load_record(checkpoint::record_from::<B, _>(&saved, "model", device)?);
        self.optim = self
            .optim
            .clone()
            .load_record(checkpoint::record_from::<B, _>(
                &saved,
                "optimizer",
                device,
            )?);
        if self.fit.config.keep == Keep::Best && state.best.is_some() {
            self.best_model = Some(if saved.records.contains_key("best") {
                model
                    .valid()
                    .load_record(checkpoint::record_from::<B::InnerBackend, _>(
                        &saved, "best", device,
                    )?)
            } else {
                model.valid()
            });
        }
        eprintln!(
            "resuming from {} ({})",
            saved.path.display(),
            saved.position
        );
        self.state = state;
        self.position = saved.position;
        Ok(model)
    }

    /// Saves a checkpoint at the current position; `None` when the run keeps none.
    fn save(&self, model: &M) -> Result<Option<PathBuf>> {
        let Some((store, _)) = &self.checkpoints else {
            return Ok(None);
        };
        let mut records = vec![
            (
                "model",
                checkpoint::record_bytes::<B, _>("model", model.clone().into_record())?,
            ),
            (
                "optimizer",
                checkpoint::record_bytes::<B, _>("optimizer", self.optim.to_record())?,
            ),
        ];
        let best_is_model = self.position.batch == 0
            && self
                .state
                .best
                .is_some_and(|b| b.epoch == self.position.epoch);
        if let (Some(best), false) = (&self.best_model, best_is_model) {
            records.push((
                "best",
                checkpoint::record_bytes::<B::InnerBackend, _>("best", best.clone().into_record())?,
            ));
        }
        let path = store.save(self.position, serde_json::to_value(&self.state)?, &records)?;
        Ok(Some(path))
    }

    fn stopped(&self, model: &M) -> Result<Error> {
        let checkpoint = self.save(model)?;
        Ok(Stopped {
            epoch: self.position.epoch,
            batch: self.position.batch,
            checkpoint,
        }
        .into())
    }

    /// One optimiser step on the training samples `batch`: the model after it, the batch's mean
    /// loss and its number of correct answers (both on the device).
    fn step(
        &mut self,
        model: M,
        batch: &[usize],
        loss_fn: &CrossEntropyLoss<B>,
    ) -> (M, Tensor<B::InnerBackend, 1>, Tensor<B::InnerBackend, 1>) {
        let fit = self.fit;
        let labels: Vec<i64> = batch
            .iter()
            .map(|&i| i64::from(fit.train_labels[i]))
            .collect();
        let x = (fit.batch)(batch);
        let y = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [batch.len()]), fit.device);
        let logits = model.logits(x);
        let hits = logits
            .clone()
            .inner()
            .argmax(1)
            .equal(y.clone().inner().reshape([batch.len(), 1]))
            .float()
            .sum();
        let loss = loss_fn.forward(logits, y);
        let mean = loss.clone().inner();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = self.optim.step(fit.config.learning_rate, model, grads);
        (model, mean, hits)
    }

    /// One epoch's batches from `skip` on; `Err(Stopped)` when a stop was asked for before its
    /// last batch.
    fn train_epoch(
        &mut self,
        mut model: M,
        epoch: usize,
        order: &[usize],
        skip: usize,
    ) -> Result<M> {
        let (fit, config) = (self.fit, self.fit.config);
        let steps = order.len().div_ceil(config.batch_size);
        let loss_fn = CrossEntropyLossConfig::new().init(fit.device);
        let start = Instant::now();
        let mut progress = Progress::new(
            fit.control.show_progress,
            format!("epoch {epoch}/{}", config.epochs),
            steps as u64,
            "batches",
        );
        if skip > 0 {
            progress.advance(skip as u64, String::new);
        }
        // The running sums stay on the device: reading them every batch would make the host wait
        // for the GPU each step. They are read when the progress shows them, at a checkpoint and
        // once an epoch.
        let scalar = |v: f32| Tensor::<B::InnerBackend, 1>::from_floats([v], fit.device);
        let (mut loss_sum, mut correct) = (scalar(self.state.loss_sum), scalar(self.state.correct));
        let read = |sum: &Tensor<B::InnerBackend, 1>| sum.clone().into_scalar().elem::<f32>();
        let seconds_before = self.state.seconds;
        for (index, batch) in order.chunks(config.batch_size).enumerate().skip(skip) {
            B::seed(fit.device, batch_seed(config.seed, epoch, index));
            let (stepped, loss, hits) = self.step(model, batch, &loss_fn);
            model = stepped;
            loss_sum = loss_sum + loss.mul_scalar(batch.len() as f32);
            correct = correct + hits;
            self.state.seen += batch.len();
            let seen = self.state.seen.max(1) as f64;
            progress.advance(1, || {
                format!(
                    "loss {:.4} acc {:.1} %",
                    f64::from(read(&loss_sum)) / seen,
                    100.0 * f64::from(read(&correct)) / seen
                )
            });
            let done = index + 1;
            let every = self.checkpoints.as_ref().map_or(0, |c| c.1);
            let stop = self.stop_requested();
            if done < steps && (stop || (every > 0 && done % every == 0)) {
                self.position = Position {
                    epoch: epoch - 1,
                    batch: done,
                };
                self.state.loss_sum = read(&loss_sum);
                self.state.correct = read(&correct);
                self.state.seconds = seconds_before + start.elapsed().as_secs_f64();
                if stop {
                    progress.finish();
                    return Err(self.stopped(&model)?);
                }
                self.save(&model)?;
            }
        }
        progress.finish();
        self.state.loss_sum = read(&loss_sum);
        self.state.correct = read(&correct);
        // Whatever is still queued on the device belongs to this epoch's time.
        let _ = B::sync(fit.device);
        self.state.seconds = seconds_before + start.elapsed().as_secs_f64();
        Ok(model)
    }

    /// Evaluates after epoch `epoch`, records it, tracks the best epoch and early stopping, and
    /// checkpoints. Returns the test-set logits.
    fn end_epoch(&mut self, model: &M, epoch: usize) -> Result<Vec<f32>> {
        let (fit, config) = (self.fit, self.fit.config);
        let start = Instant::now();
        let logits = (fit.evaluate)(&model.valid());
        let (val_loss, val_accuracy) = loss_and_accuracy(&logits, fit.test_labels, fit.num_classes);
        let seen = self.state.seen.max(1) as f64;
        let record = EpochRecord {
            epoch,
            train_loss: f64::from(self.state.loss_sum) / seen,
            train_accuracy: f64::from(self.state.correct) / seen,
            val_loss,
            val_accuracy,
            seconds: self.state.seconds + start.elapsed().as_secs_f64(),
            images_per_second: self.state.seen as f64 / self.state.seconds.max(1e-9),
        };
        if fit.control.show_progress {
            eprintln!(
                "epoch {epoch}/{}: loss {:.4} acc {:.2} % | val_loss {:.4} val_acc {:.2} % | {:.1} s ({:.0} images/s)",
                config.epochs,
                record.train_loss,
                100.0 * record.train_accuracy,
                record.val_loss,
                100.0 * record.val_accuracy,
                record.seconds,
                record.images_per_second
            );
        }
        self.state.epochs.push(record);
        let improved = self.state.best.is_none_or(|best| {
            val_loss < best.val_loss || (best.val_loss.is_nan() && !val_loss.is_nan())
        });
        if improved {
            self.state.best = Some(Best { epoch, val_loss });
            self.state.since_best = 0;
            if config.keep == Keep::Best {
                self.best_model = Some(model.valid());
            }
        } else {
            self.state.since_best += 1;
        }
        // Patience running out at the last epoch is no early stop; a run resumed with more epochs
        // stops at the start of the next one, as an uninterrupted run would have here.
        if self.out_of_patience() && epoch < config.epochs {
            self.state.stopped_early = true;
            if fit.control.show_progress {
                eprintln!(
                    "stopping early: the validation loss has not improved for {} epochs",
                    self.state.since_best
                );
            }
        }
        (self.state.loss_sum, self.state.correct) = (0.0, 0.0);
        (self.state.seen, self.state.seconds) = (0, 0.0);
        self.position = Position { epoch, batch: 0 };
        let more = epoch < config.epochs && !self.state.stopped_early;
        if more && self.stop_requested() {
            return Err(self.stopped(model)?);
        }
        let start = Instant::now();
        if let Some(path) = self.save(model)? {
            if fit.control.show_progress {
                let bytes: u64 = std::fs::read_dir(&path)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum();
                eprintln!(
                    "checkpoint {} ({:.1} MB, {:.2} s)",
                    path.display(),
                    bytes as f64 / 1e6,
                    start.elapsed().as_secs_f64()
                );
            }
        }
        Ok(logits)
    }
}

fn fit_with<B, M, O>(
    model: M,
    optim: O,
    fit: &Fit<B, M::InnerModule>,
    history: &mut History,
) -> Result<(M::InnerModule, Vec<f32>)>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + Logits<B>,
    O: Optimizer<M, B>,
{
    let config = fit.config;
    let plan = fit.control.checkpoints.as_ref();
    let mut run = Run {
        fit,
        optim,
        best_model: None,
        state: RunState {
            data: fit.data.clone(),
            settings: settings(history),
            epochs: Vec::new(),
            loss_sum: 0.0,
            correct: 0.0,
            seen: 0,
            seconds: 0.0,
            best: None,
            since_best: 0,
            stopped_early: false,
        },
        position: Position { epoch: 0, batch: 0 },
        checkpoints: plan.map(|p| (Checkpoints::new(&p.dir), p.every)),
    };
    let mut model = run.start(model, plan.is_some_and(|p| p.resume))?;
    let mut rng = Rng::new(config.seed);
    let mut order: Vec<usize> = (0..fit.train_labels.len()).collect();
    let mut last_logits = None;
    for epoch in 1..=config.epochs {
        // Every epoch's shuffle is drawn, also those a resumed run skips, so that the order of
        // the next epoch is the one an uninterrupted run would use.
        rng.shuffle(&mut order);
        if epoch <= run.position.epoch {
            continue;
        }
        if run.state.stopped_early || run.out_of_patience() {
            run.state.stopped_early = true;
            break;
        }
        let skip = if epoch == run.position.epoch + 1 {
            run.position.batch
        } else {
            0
        };
        model = run.train_epoch(model, epoch, &order, skip)?;
        last_logits = Some(run.end_epoch(&model, epoch)?);
    }
    let last_epoch = run.state.epochs.last().map_or(0, |e| e.epoch);
    history.epochs = run.state.epochs.clone();
    history.best_epoch = run.state.best.map(|b| b.epoch);
    history.stopped_early = run.state.stopped_early;
    let best_epoch = run.state.best.map(|b| b.epoch);
    let (model, logits, kept) = match run.best_model.take() {
        Some(best) if best_epoch.is_some_and(|e| e != last_epoch) => {
            let logits = (fit.evaluate)(&best);
            (best, logits, best_epoch)
        }
        _ => {
            let model = model.valid();
            let logits = last_logits.unwrap_or_else(|| (fit.evaluate)(&model));
            (model, logits, (last_epoch > 0).then_some(last_epoch))
        }
    };
    history.kept_epoch = kept;
    Ok((model, logits))
}
