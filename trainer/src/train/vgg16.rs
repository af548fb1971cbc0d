//! Training the VGG16 transfer model, with the frozen part's output cached on disk.
//!
//! The frozen convolutions are a fixed function of the image, so their output is computed once
//! per image and kept in `<models>/cache/`, keyed by the frozen weights, the images and the
//! preprocessing; every epoch then trains the rest from those features.

use crate::device::TrainBackend;
use crate::error::{Error, Result};
use crate::model::vgg16::source::Vgg16Base;
use crate::model::vgg16::transfer::{Vgg16Config, Vgg16Transfer};
use crate::ops::Kernels;
use crate::progress::Progress;
use crate::train::{self, Control, Fit, History, Stopped, TrainConfig, Trained};
use burn::module::AutodiffModule;
use burn::prelude::*;
use runtime::data::Dataset;
use runtime::InputConfig;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Version of the cache file format; part of every key.
const CACHE_FORMAT: &[u8] = b"vgg16-features-1";
const MAGIC: &[u8; 8] = b"FEATS001";

/// Where frozen features are cached.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// `None` recomputes the frozen part for every batch of every epoch (what Keras does).
    pub dir: Option<PathBuf>,
    /// File name prefix (the model's name).
    pub name: String,
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The cache key: the frozen weights, the images, their size and preprocessing.
fn cache_key(base: &Vgg16Base, frozen: usize, set: &Dataset, input: &InputConfig) -> String {
    let mut h = Fnv::new();
    h.write(CACHE_FORMAT);
    for conv in &base.convs[..frozen] {
        for v in conv.weight.iter().chain(&conv.bias) {
            h.write(&v.to_le_bytes());
        }
    }
    h.write(set.fingerprint().as_bytes());
    h.write(&(set.side as u64).to_le_bytes());
    for (k, v) in input.to_metadata() {
        h.write(k.as_bytes());
        h.write(v.as_bytes());
    }
    h.write(&(frozen as u64).to_le_bytes());
    format!("{:016x}", h.0)
}

/// Reads a cache file; `None` when it is missing or does not hold `samples x per_sample` values.
fn read_cache(path: &Path, samples: usize, per_sample: usize) -> Option<Vec<f32>> {
    let bytes = std::fs::read(path).ok()?;
    let header = MAGIC.len() + 16;
    if bytes.len() != header + 4 * samples * per_sample || &bytes[..MAGIC.len()] != MAGIC {
        return None;
    }
    let n = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
    let k = u64::from_le_bytes(bytes[16..24].try_into().ok()?);
    if n != samples as u64 || k != per_sample as u64 {
        return None;
    }
    Some(
        bytes[header..]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

fn write_cache(path: &Path, values: &[f32], samples: usize) -> Result<()> {
    let per_sample = values.len() / samples.max(1);
    let mut bytes = Vec::with_capacity(24 + 4 * values.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(samples as u64).to_le_bytes());
    bytes.extend_from_slice(&(per_sample as u64).to_le_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    crate::save::write_file(path, &bytes)
}

/// What happened to one split's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheUse {
    /// Read from disk.
    Hit,
    /// Computed and written.
    Written,
    /// Not used: the frozen part is recomputed for every batch.
    Off,
}

/// The frozen part of one model, run over data sets into cached features.
struct FrozenPass<'a, B: Backend> {
    model: &'a Vgg16Transfer<B>,
    base: &'a Vgg16Base,
    /// How many convolutions are frozen.
    frozen: usize,
    /// What the frozen part gives per image: channels, height, width.
    dims: [usize; 3],
    input: &'a InputConfig,
    /// The cache's folder and its files' prefix (the model's name).
    cache: (&'a Path, &'a str),
    batch: usize,
    device: &'a B::Device,
    control: &'a Control,
}

impl<B: Kernels> FrozenPass<'_, B> {
    /// The frozen part's output for every image of `set`: from the cache when it is current, else
    /// computed (and then written, replacing the split's stale cache files).
    fn features(&self, set: &Dataset, split: &str) -> Result<(Vec<f32>, CacheUse)> {
        let FrozenPass {
            model,
            base,
            frozen,
            dims,
            input,
            cache: (dir, name),
            batch,
            device,
            control,
        } = *self;
        let show_progress = control.show_progress;
        let path = dir.join(format!(
            "{name}-{split}-{}.features",
            cache_key(base, frozen, set, input)
        ));
        let per_sample = dims.iter().product::<usize>();
        if let Some(values) = read_cache(&path, set.len(), per_sample) {
            return Ok((values, CacheUse::Hit));
        }
        let start = Instant::now();
        let mut progress = Progress::new(
            show_progress,
            format!("frozen features ({split})"),
            set.len() as u64,
            "images",
        );
        let mut values = Vec::with_capacity(set.len() * per_sample);
        let indices: Vec<usize> = (0..set.len()).collect();
        for chunk in indices.chunks(batch.max(1)) {
            if control.stop_requested() {
                // Nothing is written: the next run computes the features again.
                return Err(Stopped {
                    epoch: 0,
                    batch: 0,
                    checkpoint: None,
                }
                .into());
            }
            let out = model.features_until(train::images_of(set, chunk, input, device), frozen);
            if out.dims()[1..] != dims {
                return Err(Error::Data(format!(
                    "the frozen blocks give {:?} per image, not the {dims:?} the model expects",
                    &out.dims()[1..]
                )));
            }
            values.extend(out.into_data().iter::<f32>());
            progress.advance(chunk.len() as u64, String::new);
        }
        progress.finish();
        if show_progress {
            eprintln!(
                "frozen features ({split}): {} images in {:.1} s",
                set.len(),
                start.elapsed().as_secs_f64()
            );
        }
        // Older caches of this split were made from other weights, images or preprocessing.
        let prefix = format!("{name}-{split}-");
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for entry in std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .flatten()
        {
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.starts_with(&prefix) && file.ends_with(".features") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        write_cache(&path, &values, set.len())?;
        Ok((values, CacheUse::Written))
    }
}

/// One split's features and what the cache did for it.
type SplitFeatures = (Vec<f32>, CacheUse);

impl<B: Kernels> FrozenPass<'_, B> {
    /// The training and the test split's features.
    fn both(&self, train: &Dataset, test: &Dataset) -> Result<(SplitFeatures, SplitFeatures)> {
        Ok((self.features(train, "train")?, self.features(test, "test")?))
    }
}

/// Rows `indices` of `values` (`per_sample` each) as a `[n, c, s, s]` tensor.
fn rows_of<B: Backend>(
    values: &[f32],
    dims: [usize; 3],
    indices: &[usize],
    device: &B::Device,
) -> Tensor<B, 4> {
    let per = dims.iter().product::<usize>();
    let mut out = Vec::with_capacity(indices.len() * per);
    for &i in indices {
        out.extend_from_slice(&values[i * per..(i + 1) * per]);
    }
    Tensor::from_data(
        TensorData::new(out, [indices.len(), dims[0], dims[1], dims[2]]),
        device,
    )
}

/// What the cache did for a run, for the history and the summary.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CacheReport {
    pub train: CacheUse,
    pub test: CacheUse,
    pub seconds: f64,
    /// The cache folder and the bytes its files take now (every run's and size's features:
    /// deleting the folder frees them, and a later run computes what it needs again).
    #[serde(default)]
    pub folder: Option<(PathBuf, u64)>,
}

impl CacheReport {
    /// What the cache in `dir` did for `features` (none: it was off), in `seconds`.
    fn of(
        features: Option<&(SplitFeatures, SplitFeatures)>,
        seconds: f64,
        dir: Option<&Path>,
    ) -> Self {
        let size = |dir: &Path| -> u64 {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .sum()
        };
        CacheReport {
            train: features.map_or(CacheUse::Off, |f| f.0 .1),
            test: features.map_or(CacheUse::Off, |f| f.1 .1),
            seconds,
            folder: features.and(dir).map(|d| (d.to_path_buf(), size(d))),
        }
    }
}

/// Trains the VGG16 transfer model. `train` and `test` are resized to the model's side first.
#[allow(clippy::too_many_arguments)]
pub fn train_vgg16<B: TrainBackend>(
    device: &B::Device,
    device_name: &str,
    base: &Vgg16Base,
    train: &Dataset,
    test: &Dataset,
    model_config: &Vgg16Config,
    config: &TrainConfig,
    cache: &CacheOptions,
    control: &Control,
) -> Result<(Trained<Vgg16Transfer<B::InnerBackend>>, CacheReport)> {
    train::check_sets(train, test, config)?;
    model_config.check(base)?;
    let train = &train.resized(model_config.side);
    let test = &test.resized(model_config.side);
    let input = model_config.input_config();
    let frozen = model_config.freeze.frozen_convs();
    let dims = model_config.freeze.feature_dims(model_config.side);
    let _turn = train::take_turn();
    B::seed(device, config.seed);
    let model: Vgg16Transfer<B> = model_config.init(base, device);
    let start = Instant::now();
    let features = match cache.dir.as_deref().filter(|_| frozen > 0) {
        Some(dir) => Some(
            FrozenPass {
                model: &model.valid(),
                base,
                frozen,
                dims,
                input: &input,
                cache: (dir, cache.name.as_str()),
                batch: config.eval_batch_size,
                device,
                control,
            }
            .both(train, test)?,
        ),
        None => None,
    };
    let setup_seconds = start.elapsed().as_secs_f64();
    let report = CacheReport::of(features.as_ref(), setup_seconds, cache.dir.as_deref());
    let mut history = History {
        train_images: train.len(),
        test_images: test.len(),
        setup_seconds,
        ..History::new(serde_json::to_value(model_config)?, config, device_name)
    };
    let inputs = Inputs::new(features.as_ref(), (train, test), &input, dims, frozen);
    let batch = |indices: &[usize]| inputs.batch::<B>(indices, device);
    let evaluate = |m: &Vgg16Transfer<B::InnerBackend>| {
        inputs.evaluate(m, test.len(), config.eval_batch_size, device)
    };
    let start = inputs.start();
    let fit = Fit::on_sets(device, config, (train, test), &batch, &evaluate, control);
    let (model, test_logits) = train::fit(model.starting_at(start), &fit, &mut history)?;
    Ok((
        Trained {
            model: model.starting_at(0),
            history,
            test_logits,
        },
        report,
    ))
}

/// Where a run's training batches and test-set evaluations come from.
enum Inputs<'a> {
    /// Rows of cached frozen features; the model starts after the `frozen` convolutions.
    Features {
        train: &'a [f32],
        test: &'a [f32],
        dims: [usize; 3],
        frozen: usize,
    },
    /// Images, through the whole network (the frozen part recomputed for every batch).
    Images {
        train: &'a Dataset,
        test: &'a Dataset,
        input: &'a InputConfig,
    },
}

impl<'a> Inputs<'a> {
    /// Cached `features` when there are, else the images of `sets`.
    fn new(
        features: Option<&'a (SplitFeatures, SplitFeatures)>,
        sets: (&'a Dataset, &'a Dataset),
        input: &'a InputConfig,
        dims: [usize; 3],
        frozen: usize,
    ) -> Self {
        match features {
            Some(((train, _), (test, _))) => Inputs::Features {
                train,
                test,
                dims,
                frozen,
            },
            None => Inputs::Images {
                train: sets.0,
                test: sets.1,
                input,
            },
        }
    }

    /// The convolution the trained model starts at.
    fn start(&self) -> usize {
        match self {
            Inputs::Features { frozen, .. } => *frozen,
            Inputs::Images { .. } => 0,
        }
    }

    /// The training samples `indices` as the model's input.
    fn batch<B: Backend>(&self, indices: &[usize], device: &B::Device) -> Tensor<B, 4> {
        match self {
            Inputs::Features { train, dims, .. } => rows_of(train, *dims, indices, device),
            Inputs::Images { train, input, .. } => train::images_of(train, indices, input, device),
        }
    }

    /// Test-set logits of `model` (its `len` samples), in batches of `batch`.
    fn evaluate<B: Kernels>(
        &self,
        model: &Vgg16Transfer<B>,
        len: usize,
        batch: usize,
        device: &B::Device,
    ) -> Vec<f32> {
        match self {
            Inputs::Features {
                test, dims, frozen, ..
            } => train::in_batches(len, batch, |chunk| {
                model.forward_from(rows_of(test, *dims, chunk, device), *frozen)
            }),
            Inputs::Images { test, input, .. } => predict(model, test, input, batch, device),
        }
    }
}

/// Logits of `model` on every image of `set` (already at the model's side).
pub fn predict<B: Kernels>(
    model: &Vgg16Transfer<B>,
    set: &Dataset,
    input: &InputConfig,
    batch: usize,
    device: &B::Device,
) -> Vec<f32> {
    train::in_batches(set.len(), batch, |chunk| {
        model.forward(train::images_of(set, chunk, input, device))
    })
}
