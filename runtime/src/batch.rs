//! Classifying many files: walking folders, decoding in parallel, running the model in batches.
//! One bad file is reported with its reason and never stops the others.

use crate::classifier::Classifier;
use crate::preprocess::{self, ImageError};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Condvar, Mutex, PoisonError};

/// File extensions taken from folders (files named explicitly are always tried).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "jfif"];

/// Whether `path` has an image file extension.
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

pub use crate::result_rows::FileOutcome;

/// The files found under some paths.
#[derive(Debug, Default)]
pub struct FileList {
    /// Files to classify, in a stable order.
    pub files: Vec<PathBuf>,
    /// Paths that could not be listed, with the reason (each counts as a failed file).
    pub errors: Vec<FileOutcome>,
    /// Files in folders left out because their names are not image names.
    pub skipped: usize,
}

/// Shard `index` (from 1) of `count`: a contiguous share of a file list in its order, so that the
/// outputs of shards 1 to `count`, one after the other, are the unsharded run's. The list's order
/// comes from the paths alone (each folder walked in name order), so every machine given the same
/// files and the same `count` picks the same share: one shard per task of a Kubernetes Indexed
/// Job or a Slurm array (whose indices from 0 need 1 added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, from 1.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `K/N`, with `1 <= K <= N`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a shard K/N with 1 <= K <= N");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// The positions of this shard's share of `len` items: `len / count` or one more each.
    pub fn range(&self, len: usize) -> std::ops::Range<usize> {
        let at = |k: usize| k * len / self.count;
        at(self.index - 1)..at(self.index)
    }

    /// Whether this is the first shard, the one that also reports what could not be listed (and,
    /// in a CSV or table, writes the header).
    pub fn is_first(&self) -> bool {
        self.index == 1
    }
}

impl FileList {
    /// This list's share for `shard`: its files in [`Shard::range`]; the paths that could not be
    /// listed go to the first shard, the count of skipped files too.
    pub fn shard(mut self, shard: Shard) -> FileList {
        let range = shard.range(self.files.len());
        self.files = self.files.drain(range).collect();
        if !shard.is_first() {
            self.errors.clear();
            self.skipped = 0;
        }
        self
    }
}

/// Lists the files to classify: each file as given, each folder walked recursively in name
/// order. Symbolic links are followed, but a folder already visited (a link loop) is not
/// entered twice.
pub fn collect_files(paths: &[PathBuf]) -> FileList {
    let mut list = FileList::default();
    let mut visited = HashSet::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut visited, &mut list);
        } else if path.exists() {
            list.files.push(path.clone());
        } else {
            list.errors.push(FileOutcome {
                path: path.clone(),
                result: Err("no such file or folder".into()),
            });
        }
    }
    list
}

fn walk(dir: &Path, visited: &mut HashSet<PathBuf>, list: &mut FileList) {
    let fail = |list: &mut FileList, path: &Path, e: std::io::Error| {
        list.errors.push(FileOutcome {
            path: path.to_path_buf(),
            result: Err(format!("cannot list folder: {e}")),
        })
    };
    match std::fs::canonicalize(dir) {
        Ok(real) => {
            if !visited.insert(real) {
                return;
            }
        }
        Err(e) => return fail(list, dir, e),
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => return fail(list, dir, e),
    };
    entries.sort();
    for entry in entries {
        let hidden = entry
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if entry.is_dir() {
            walk(&entry, visited, list);
        } else if has_image_extension(&entry) {
            list.files.push(entry);
        } else {
            list.skipped += 1;
        }
    }
}

/// The most images one model run may take: a batch's tensors and decoded images are held at
/// once.
pub const MAX_BATCH: usize = 4096;
/// The most threads a job may ask for (decoding, or an engine's threads).
pub const MAX_THREADS: usize = 1024;

/// `value` when it is from 1 to `max`; otherwise a sentence saying what `what` must be.
///
/// # Errors
/// When `value` is 0 or more than `max`.
pub fn check_count(what: &str, value: usize, max: usize) -> Result<usize, String> {
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{what} must be from 1 to {max}, not {value}"))
    }
}

/// How to run a batch job.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    /// Images per model run.
    pub batch: usize,
    /// Threads decoding images.
    pub decode_threads: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            batch: 32,
            decode_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Classifies `files`, calling `emit` once per file in the order given. Decoding runs on
/// `decode_threads` threads while the model runs; a file that cannot be read or decoded, or a
/// batch the engine fails on, is reported through `emit` and the job goes on.
pub fn classify_files(
    classifier: &mut Classifier,
    files: &[PathBuf],
    options: BatchOptions,
    emit: impl FnMut(FileOutcome),
) {
    classify_each(
        classifier,
        files,
        |path| path.clone(),
        |path, height, width| preprocess::load_planar(path, height, width),
        options,
        emit,
    );
}

/// Classifies encoded images held in memory (any format [`classify_files`] reads), each with the
/// name its outcome carries (a path, a URL, a key), as [`classify_files`] classifies files: in
/// parallel, in the order given, a bad image reported and the others classified.
pub fn classify_encoded<N, B>(
    classifier: &mut Classifier,
    images: &[(N, B)],
    options: BatchOptions,
    emit: impl FnMut(FileOutcome),
) where
    N: AsRef<Path> + Sync,
    B: AsRef<[u8]> + Sync,
{
    classify_each(
        classifier,
        images,
        |(name, _)| name.as_ref().to_path_buf(),
        |(_, bytes), height, width| {
            let img = preprocess::decode_image_bytes(bytes.as_ref())?;
            Ok(preprocess::fit_planar(&img, height, width))
        },
        options,
        emit,
    );
}

type Decoded = Result<Vec<u8>, ImageError>;

/// How many items the consumer has taken in order, for decoders to wait on.
#[derive(Default)]
struct Released {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Released {
    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.count.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, count: usize) {
        *self.lock() = count;
        self.changed.notify_all();
    }

    /// Waits until item `i` is fewer than `ahead` items past the released ones.
    fn wait_below(&self, i: usize, ahead: usize) {
        let mut count = self.lock();
        while i >= count.saturating_add(ahead) {
            count = self
                .changed
                .wait(count)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A guard that releases every item when dropped.
    fn opened_on_drop(&self) -> impl Drop + '_ {
        struct Open<'a>(&'a Released);
        impl Drop for Open<'_> {
            fn drop(&mut self) {
                self.0.set(usize::MAX);
            }
        }
        Open(self)
    }
}

/// The batch job over any items: `load` turns one into planar pixels of the model's size (on
/// the decoding threads), `name` names its outcome.
fn classify_each<T: Sync>(
    classifier: &mut Classifier,
    items: &[T],
    name: impl Fn(&T) -> PathBuf,
    load: impl Fn(&T, usize, usize) -> Decoded + Sync,
    options: BatchOptions,
    mut emit: impl FnMut(FileOutcome),
) {
    let (height, width) = (
        classifier.input_config().height,
        classifier.input_config().width,
    );
    let batch = options.batch.max(1);
    let next = AtomicUsize::new(0);
    // Decoders stay at most `ahead` images in front of the oldest one not yet released, so
    // memory stays flat even when one image is slow to decode.
    let ahead = 2 * batch + options.decode_threads;
    let released = Released::default();
    let (tx, rx) = mpsc::sync_channel::<(usize, Decoded)>(ahead.min(items.len()).max(1));
    std::thread::scope(|scope| {
        for _ in 0..options.decode_threads.clamp(1, items.len().max(1)) {
            let tx = tx.clone();
            let (next, load, released) = (&next, &load, &released);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                released.wait_below(i, ahead);
                if tx.send((i, load(item, height, width))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Every decoder goes on to the end, however this thread leaves the scope.
        let _open = released.opened_on_drop();
        // Results arrive out of order; they are released in order.
        let mut pending: BTreeMap<usize, Decoded> = BTreeMap::new();
        let mut ready: Vec<(usize, Decoded)> = Vec::new();
        let mut next_out = 0;
        let mut decoded_in_ready = 0;
        let mut flush = |ready: &mut Vec<(usize, Decoded)>, classifier: &mut Classifier| {
            let pixels: Vec<u8> = ready
                .iter()
                .filter_map(|(_, r)| r.as_ref().ok())
                .flatten()
                .copied()
                .collect();
            let mut predictions = if pixels.is_empty() {
                Ok(Vec::new().into_iter())
            } else {
                classifier.classify_planar(&pixels).map(Vec::into_iter)
            };
            for (i, decoded) in ready.drain(..) {
                let result = match (decoded, &mut predictions) {
                    (Err(e), _) => Err(e.to_string()),
                    (Ok(_), Ok(it)) => it.next().ok_or_else(|| "no prediction".to_string()),
                    (Ok(_), Err(e)) => Err(e.to_string()),
                };
                emit(FileOutcome {
                    path: name(&items[i]),
                    result,
                });
            }
        };
        for (i, decoded) in rx {
            pending.insert(i, decoded);
            while let Some(decoded) = pending.remove(&next_out) {
                decoded_in_ready += usize::from(decoded.is_ok());
                ready.push((next_out, decoded));
                next_out += 1;
                released.set(next_out);
                if decoded_in_ready == batch {
                    flush(&mut ready, classifier);
                    decoded_in_ready = 0;
                }
            }
        }
        flush(&mut ready, classifier);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_stay_a_bounded_distance_ahead_of_a_slow_image() {
        let model = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tiny_classifier.onnx"
        );
        let mut classifier = Classifier::builder()
            .engine(crate::engine::EngineChoice::Tract)
            .build_from_file(model)
            .unwrap();
        let items: Vec<usize> = (0..500).collect();
        let furthest = AtomicUsize::new(0);
        let options = BatchOptions {
            batch: 4,
            decode_threads: 3,
        };
        let mut order = Vec::new();
        classify_each(
            &mut classifier,
            &items,
            |i| PathBuf::from(i.to_string()),
            |&i, h, w| {
                if i == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    // While image 0 decoded, the others went no further than the window.
                    let seen = furthest.load(Ordering::SeqCst);
                    assert!(
                        seen < 2 * 4 + 3 + 3,
                        "decoded up to {seen} while 0 was slow"
                    );
                }
                furthest.fetch_max(i, Ordering::SeqCst);
                Ok(vec![(i % 251) as u8; 3 * h * w])
            },
            options,
            |o| order.push(o.path),
        );
        let expected: Vec<PathBuf> = items.iter().map(|i| PathBuf::from(i.to_string())).collect();
        assert_eq!(order, expected);
    }

    #[test]
    fn shards_split_a_list_into_contiguous_shares_that_concatenate_to_it() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        for len in [0, 1, 5, 7, 100] {
            for count in 1..=8 {
                let mut joined = Vec::new();
                for index in 1..=count {
                    let range = Shard { index, count }.range(len);
                    assert!(range.len() <= len / count + 1);
                    joined.extend(range);
                }
                assert_eq!(joined, (0..len).collect::<Vec<_>>(), "{len} in {count}");
            }
        }
    }
}
