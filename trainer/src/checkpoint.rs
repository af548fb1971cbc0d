//! Checkpoints of a training run on disk: written whole or not at all, the newest two kept, a
//! damaged one skipped for the one before.
//!
//! A run's checkpoints live in one folder (`models/<name>.checkpoints/`), one sub-folder each,
//! named by how far the run had got (`epoch-0003-batch-000040`: 3 epochs done and 40 batches of
//! the fourth). A sub-folder holds Burn records (`model.mpk`, `optimizer.mpk`, ...: Burn's
//! named-MessagePack format at full precision) and `state.json`, which holds the SHA-256 of each
//! record and the caller's own state. The sub-folder is assembled under a temporary name and
//! renamed into place, so a run killed while writing leaves at most a temporary folder, which the
//! next save or load removes.
//!
//! This module knows nothing of what is trained: the training loop (`train`) decides what goes
//! into a checkpoint and what a resume needs.

pub use crate::error::CheckpointError;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How far a run had got: `epoch` epochs done, and `batch` batches of the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub epoch: usize,
    pub batch: usize,
}

impl Position {
    fn folder_name(self) -> String {
        format!("epoch-{:04}-batch-{:06}", self.epoch, self.batch)
    }

    fn from_folder_name(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("epoch-")?;
        let (epoch, batch) = rest.split_once("-batch-")?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(epoch) || !digits(batch) {
            return None;
        }
        Some(Position {
            epoch: epoch.parse().ok()?,
            batch: batch.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::error::at_text(self.epoch, self.batch))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The `state.json` of a checkpoint.
#[derive(Serialize, Deserialize)]
struct Manifest {
    position: Position,
    /// SHA-256 (hex) of each record file, by part name.
    records: BTreeMap<String, String>,
    state: serde_json::Value,
}

/// A checkpoint read back whole: its records' bytes verified against `state.json`.
#[derive(Debug)]
pub struct Saved {
    pub path: PathBuf,
    pub position: Position,
    /// The caller's state, as it was saved.
    pub state: serde_json::Value,
    /// Record bytes by part name (`model`, `optimizer`, ...).
    pub records: BTreeMap<String, Vec<u8>>,
}

/// The checkpoint folder of one run.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
    keep: usize,
}

const STATE: &str = "state.json";
const TEMPORARY: &str = ".tmp-";

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn part_file(part: &str) -> String {
    format!("{part}.mpk")
}

impl Checkpoints {
    /// The checkpoints in `dir`; saving keeps the newest two.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Checkpoints {
            dir: dir.into(),
            keep: 2,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The checkpoint folders there, newest first (whatever their state).
    fn listed(&self) -> Result<Vec<(Position, PathBuf)>, CheckpointError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(position) = Position::from_folder_name(&name) {
                found.push((position, entry.path()));
            }
        }
        found.sort_by_key(|entry| std::cmp::Reverse(entry.0));
        Ok(found)
    }

    /// Removes the temporary folders of saves that never finished (a killed run).
    fn remove_unfinished(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(TEMPORARY) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }

    /// Removes every checkpoint (a run starting afresh).
    pub fn clear(&self) -> Result<(), CheckpointError> {
        self.remove_unfinished();
        for (_, path) in self.listed()? {
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
        }
        Ok(())
    }

    /// Saves a checkpoint at `position`: `records` (part name, Burn record bytes) and the caller's
    /// `state`. Then removes all but the newest two. Returns the checkpoint's folder.
    pub fn save(
        &self,
        position: Position,
        state: serde_json::Value,
        records: &[(&str, Vec<u8>)],
    ) -> Result<PathBuf, CheckpointError> {
        crate::save::as_one_write(|| self.save_now(position, state, records))
    }

    fn save_now(
        &self,
        position: Position,
        state: serde_json::Value,
        records: &[(&str, Vec<u8>)],
    ) -> Result<PathBuf, CheckpointError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        self.remove_unfinished();
        let tmp = tempfile::Builder::new()
            .prefix(TEMPORARY)
            .tempdir_in(&self.dir)
            .map_err(io(&self.dir))?;
        let write = |name: &str, bytes: &[u8]| {
            let path = tmp.path().join(name);
            std::fs::File::create(&path)
                .and_then(|mut file| {
                    std::io::Write::write_all(&mut file, bytes)?;
                    file.sync_all()
                })
                .map_err(io(&path))
        };
        let mut hashes = BTreeMap::new();
        for (part, bytes) in records {
            write(&part_file(part), bytes)?;
            hashes.insert((*part).to_string(), sha256_hex(bytes));
        }
        let manifest = Manifest {
            position,
            records: hashes,
            state,
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| CheckpointError::Encode {
            what: STATE.into(),
            reason: e.to_string(),
        })?;
        write(STATE, &json)?;
        let path = self.dir.join(position.folder_name());
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
        }
        let tmp = tmp.keep();
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        for (_, old) in self.listed()?.into_iter().skip(self.keep) {
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(path)
    }

    /// The newest checkpoint that reads back whole, with a notice for each newer one that did
    /// not (and was skipped, then removed). `None` when there is none. Older ones beyond two
    /// (left by a run killed between a save and its clean-up) are removed.
    pub fn newest(&self) -> Result<(Option<Saved>, Vec<String>), CheckpointError> {
        let mut notices = Vec::new();
        let listed = self.listed()?;
        for (i, (position, path)) in listed.iter().enumerate() {
            match read(path, *position) {
                Ok(saved) => {
                    // The damaged ones before it are of no use; nor are more than `keep`.
                    let damaged = listed.iter().take(i);
                    for (_, old) in damaged.chain(listed.iter().skip(i + self.keep)) {
                        let _ = std::fs::remove_dir_all(old);
                    }
                    return Ok((Some(saved), notices));
                }
                Err(why) => notices.push(format!(
                    "checkpoint {} is damaged ({why}); trying the one before",
                    path.display()
                )),
            }
        }
        Ok((None, notices))
    }
}

fn read(path: &Path, position: Position) -> Result<Saved, String> {
    let state = std::fs::read(path.join(STATE)).map_err(|e| format!("{STATE}: {e}"))?;
    let manifest: Manifest = serde_json::from_slice(&state).map_err(|e| format!("{STATE}: {e}"))?;
    if manifest.position != position {
        return Err(format!(
            "{STATE} says {}, the folder's name {position}",
            manifest.position
        ));
    }
    let mut records = BTreeMap::new();
    for (part, hash) in manifest.records {
        let file = part_file(&part);
        let bytes = std::fs::read(path.join(&file)).map_err(|e| format!("{file}: {e}"))?;
        if sha256_hex(&bytes) != hash {
            return Err(format!("{file} is not the file that was saved"));
        }
        records.insert(part, bytes);
    }
    Ok(Saved {
        path: path.to_path_buf(),
        position,
        state: manifest.state,
        records,
    })
}

/// A Burn record as bytes (named MessagePack, full precision: it reads back bit for bit).
pub fn record_bytes<B: Backend, R: Record<B>>(
    what: &str,
    record: R,
) -> Result<Vec<u8>, CheckpointError> {
    NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
        .record(record, ())
        .map_err(|e| CheckpointError::Encode {
            what: what.into(),
            reason: e.to_string(),
        })
}

/// A Burn record from the bytes of [`record_bytes`]; `part` of checkpoint `saved`.
pub fn record_from<B: Backend, R: Record<B>>(
    saved: &Saved,
    part: &str,
    device: &B::Device,
) -> Result<R, CheckpointError> {
    let damaged = |reason: String| CheckpointError::Damaged {
        path: saved.path.join(part_file(part)),
        reason,
    };
    let bytes = saved
        .records
        .get(part)
        .ok_or_else(|| damaged("missing".into()))?;
    NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
        .load(bytes.clone(), device)
        .map_err(|e| damaged(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save(c: &Checkpoints, epoch: usize, batch: usize) -> PathBuf {
        c.save(
            Position { epoch, batch },
            serde_json::json!({ "epoch": epoch }),
            &[("model", vec![epoch as u8; 10])],
        )
        .unwrap()
    }

    #[test]
    fn the_newest_two_are_kept_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoints::new(dir.path().join("run.checkpoints"));
        assert!(c.newest().unwrap().0.is_none());
        for epoch in 1..=4 {
            save(&c, epoch, 0);
        }
        save(&c, 4, 7);
        // A save killed after its rename, before its clean-up, leaves a third.
        std::fs::create_dir(dir.path().join("run.checkpoints/epoch-0001-batch-000000")).unwrap();
        assert_eq!(c.listed().unwrap().len(), 3);
        assert!(c.newest().unwrap().0.is_some());
        let kept: Vec<Position> = c.listed().unwrap().into_iter().map(|p| p.0).collect();
        assert_eq!(
            kept,
            [
                Position { epoch: 4, batch: 7 },
                Position { epoch: 4, batch: 0 }
            ]
        );
        let (saved, notices) = c.newest().unwrap();
        let saved = saved.unwrap();
        assert!(notices.is_empty());
        assert_eq!(saved.position, Position { epoch: 4, batch: 7 });
        assert_eq!(saved.records["model"], vec![4u8; 10]);
        assert_eq!(saved.state["epoch"], 4);
    }

    #[test]
    fn a_damaged_or_unfinished_checkpoint_falls_back_to_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoints::new(dir.path());
        save(&c, 1, 0);
        let newest = save(&c, 2, 0);
        // A record changed after saving, as a torn write or a bad disk would leave it.
        std::fs::write(newest.join("model.mpk"), b"garbage").unwrap();
        // A save killed half-way.
        std::fs::create_dir(dir.path().join(".tmp-abc")).unwrap();
        let (saved, notices) = c.newest().unwrap();
        assert_eq!(saved.unwrap().position, Position { epoch: 1, batch: 0 });
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(
            notices[0].contains("epoch-0002-batch-000000"),
            "{notices:?}"
        );
        // The damaged one is gone: it would take one of the two places.
        assert!(!newest.exists());
        // A state file cut short.
        let first = dir.path().join("epoch-0001-batch-000000/state.json");
        let text = std::fs::read(&first).unwrap();
        std::fs::write(&first, &text[..text.len() / 2]).unwrap();
        let (saved, notices) = c.newest().unwrap();
        assert!(saved.is_none());
        assert_eq!(notices.len(), 1);
        save(&c, 3, 0);
        assert!(!dir.path().join(".tmp-abc").exists());
        c.clear().unwrap();
        assert!(c.listed().unwrap().is_empty());
    }

    #[test]
    fn folder_names_order_as_positions() {
        let p = Position {
            epoch: 12,
            batch: 345,
        };
        assert_eq!(Position::from_folder_name(&p.folder_name()), Some(p));
        assert_eq!(Position::from_folder_name("epoch-1-batch-"), None);
        assert_eq!(Position::from_folder_name("epoch-+1-batch-2"), None);
        assert_eq!(p.to_string(), "epoch 13, batch 345");
    }
}
