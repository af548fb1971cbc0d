//! The CIFAR-10 binary release: `data_batch_1..5.bin`, `test_batch.bin`, `batches.meta.txt`.
//! Each record is one label byte then 1024 R, 1024 G and 1024 B bytes of a 32x32 image.

use super::{DataError, Dataset};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Side of a CIFAR image.
pub const CIFAR_SIDE: usize = 32;
/// Bytes of one record: the label then the three planes.
pub const RECORD_LEN: usize = 1 + 3 * CIFAR_SIDE * CIFAR_SIDE;

/// Which part of the release to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarSplit {
    /// `data_batch_*.bin`, or a folder's `train/`.
    Train,
    /// `test_batch.bin`, or a folder's `test/`.
    Test,
}

impl CifarSplit {
    pub(crate) fn folder_name(self) -> &'static str {
        match self {
            CifarSplit::Train => "train",
            CifarSplit::Test => "test",
        }
    }
}

const META: &str = "batches.meta.txt";

/// The ten CIFAR-10 class names, used when a folder has no `batches.meta.txt`.
const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// `path` itself when it holds CIFAR batches, else its `cifar-10-batches-bin` child when that does.
pub(crate) fn find_cifar_dir(path: &Path) -> Option<PathBuf> {
    [path.to_path_buf(), path.join("cifar-10-batches-bin")]
        .into_iter()
        .find(|dir| dir.join("test_batch.bin").is_file() || dir.join("data_batch_1.bin").is_file())
}

/// Class names from `dir/batches.meta.txt` (see [`parse_meta`]); the CIFAR-10 names when absent.
pub(crate) fn read_meta(dir: &Path) -> Result<Vec<String>, DataError> {
    let path = dir.join(META);
    match std::fs::read(&path) {
        Ok(bytes) => parse_meta(&bytes, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect())
        }
        Err(e) => Err(DataError::io(&path, e)),
    }
}

/// Class names from the text of a `batches.meta.txt`: one per non-empty line, 1 to 256 of them
/// (labels are bytes); `path` names the file in errors.
///
/// # Errors
/// When the text is not UTF-8 or holds no names or more than 256.
pub fn parse_meta(bytes: &[u8], path: &Path) -> Result<Vec<String>, DataError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| DataError::invalid(path, format!("not UTF-8 text ({e})")))?;
    let classes: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if classes.is_empty() || classes.len() > 256 {
        return Err(DataError::invalid(
            path,
            format!("expected 1 to 256 class names, found {}", classes.len()),
        ));
    }
    Ok(classes)
}

/// Reads one CIFAR batch file. Labels must index `classes`.
///
/// # Errors
/// When the file cannot be read, is not whole records, or a label does not index `classes`.
pub fn read_cifar_file(path: &Path, classes: &[String]) -> Result<Dataset, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    read_cifar_bytes(&bytes, path, classes)
}

/// [`read_cifar_file`] on bytes in memory; `path` names them in errors.
///
/// # Errors
/// When the bytes are empty, not whole records, or a label does not index `classes`.
pub fn read_cifar_bytes(
    bytes: &[u8],
    path: &Path,
    classes: &[String],
) -> Result<Dataset, DataError> {
    let len = bytes.len() as u64;
    if bytes.is_empty() {
        return Err(DataError::invalid(path, "the file is empty"));
    }
    if !bytes.len().is_multiple_of(RECORD_LEN) {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            len,
            record: RECORD_LEN,
            offset: (bytes.len() - bytes.len() % RECORD_LEN) as u64,
        });
    }
    let n = bytes.len() / RECORD_LEN;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * (RECORD_LEN - 1));
    for (i, record) in bytes.chunks_exact(RECORD_LEN).enumerate() {
        let label = record[0];
        if usize::from(label) >= classes.len() {
            return Err(DataError::BadLabel {
                path: path.to_path_buf(),
                offset: (i * RECORD_LEN) as u64,
                label,
                classes: classes.len(),
            });
        }
        labels.push(label);
        pixels.extend_from_slice(&record[1..]);
    }
    Ok(Dataset {
        side: CIFAR_SIDE,
        pixels,
        labels,
        classes: classes.to_vec(),
    })
}

/// Reads a split of a `cifar-10-batches-bin` folder: all `data_batch_N.bin` in order, or `test_batch.bin`.
///
/// # Errors
/// When the folder holds no batch of the split, or a batch or the class list cannot be read.
pub fn read_cifar_dir(dir: &Path, split: CifarSplit) -> Result<Dataset, DataError> {
    let classes = read_meta(dir)?;
    let files: Vec<PathBuf> = match split {
        CifarSplit::Test => vec![dir.join("test_batch.bin")],
        CifarSplit::Train => {
            let files: Vec<PathBuf> = (1..)
                .map(|i| dir.join(format!("data_batch_{i}.bin")))
                .take_while(|p| p.is_file())
                .collect();
            if files.is_empty() {
                vec![dir.join("data_batch_1.bin")]
            } else {
                files
            }
        }
    };
    let mut set = Dataset {
        side: CIFAR_SIDE,
        pixels: Vec::new(),
        labels: Vec::new(),
        classes: classes.clone(),
    };
    for file in &files {
        let part = read_cifar_file(file, &classes)?;
        set.pixels.extend_from_slice(&part.pixels);
        set.labels.extend_from_slice(&part.labels);
    }
    Ok(set)
}

/// Writes `set` (32x32 images) as one CIFAR batch file, atomically.
///
/// # Errors
/// When the images are not 32x32 or the file cannot be written.
pub fn write_cifar_file(path: &Path, set: &Dataset) -> Result<(), DataError> {
    if set.side != CIFAR_SIDE {
        return Err(DataError::invalid(
            path,
            format!(
                "CIFAR records hold {CIFAR_SIDE}x{CIFAR_SIDE} images, not {0}x{0}",
                set.side
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(set.len() * RECORD_LEN);
    for i in 0..set.len() {
        bytes.push(set.labels[i]);
        bytes.extend_from_slice(set.image(i));
    }
    crate::files::write_atomic(path, &bytes).map_err(|e| DataError::io(path, e))
}

/// Writes `batches.meta.txt` with one class name per line.
///
/// # Errors
/// When the file cannot be written.
pub fn write_meta(dir: &Path, classes: &[String]) -> Result<(), DataError> {
    let path = dir.join(META);
    let mut text = Vec::new();
    for c in classes {
        writeln!(text, "{c}").map_err(|e| DataError::io(&path, e))?;
    }
    crate::files::write_atomic(&path, &text).map_err(|e| DataError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Dataset {
        Dataset {
            side: CIFAR_SIDE,
            pixels: (0..n * (RECORD_LEN - 1))
                .map(|i| (i * 7 % 251) as u8)
                .collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
            classes: CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn round_trip_through_a_batch_folder() {
        let dir = tempfile::tempdir().unwrap();
        let train = sample(23);
        let test = sample(5);
        write_cifar_file(&dir.path().join("data_batch_1.bin"), &train).unwrap();
        write_cifar_file(&dir.path().join("data_batch_2.bin"), &test).unwrap();
        write_cifar_file(&dir.path().join("test_batch.bin"), &test).unwrap();
        write_meta(dir.path(), &train.classes).unwrap();
        let read = read_cifar_dir(dir.path(), CifarSplit::Train).unwrap();
        assert_eq!(read.len(), 28);
        assert_eq!(read.image(0), train.image(0));
        assert_eq!(read.image(23), test.image(0));
        assert_eq!(read_cifar_dir(dir.path(), CifarSplit::Test).unwrap(), test);
        // The record layout is label, then R, G, B planes.
        let bytes = std::fs::read(dir.path().join("test_batch.bin")).unwrap();
        assert_eq!(bytes.len(), 5 * RECORD_LEN);
        assert_eq!(bytes[RECORD_LEN], test.labels[1]);
        assert_eq!(&bytes[RECORD_LEN + 1..2 * RECORD_LEN], test.image(1));
    }

    #[test]
    fn truncated_record_names_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data_batch_1.bin");
        let mut bytes = vec![0u8; 2 * RECORD_LEN + 100];
        bytes[RECORD_LEN] = 3;
        std::fs::write(&path, &bytes).unwrap();
        let err = read_cifar_file(&path, &sample(1).classes).unwrap_err();
        match &err {
            DataError::Truncated {
                path: p, offset, ..
            } => {
                assert_eq!(p, &path);
                assert_eq!(*offset, 2 * RECORD_LEN as u64);
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("data_batch_1.bin") && text.contains("6146"),
            "{text}"
        );
    }

    #[test]
    fn wrong_size_and_empty_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small.bin");
        std::fs::write(&small, [1u8; 10]).unwrap();
        assert!(matches!(
            read_cifar_file(&small, &sample(1).classes),
            Err(DataError::Truncated {
                offset: 0,
                len: 10,
                ..
            })
        ));
        let empty = dir.path().join("empty.bin");
        std::fs::write(&empty, []).unwrap();
        let err = read_cifar_file(&empty, &sample(1).classes).unwrap_err();
        assert!(err.to_string().contains("empty.bin"), "{err}");
    }

    #[test]
    fn bad_label_names_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test_batch.bin");
        let mut bytes = vec![0u8; 3 * RECORD_LEN];
        bytes[2 * RECORD_LEN] = 10;
        std::fs::write(&path, &bytes).unwrap();
        let err = read_cifar_file(&path, &sample(1).classes).unwrap_err();
        assert!(
            matches!(err, DataError::BadLabel { label: 10, offset, .. } if offset == 2 * RECORD_LEN as u64)
        );
        assert!(err.to_string().contains("test_batch.bin"));
    }

    #[test]
    fn missing_files_are_io_errors_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_cifar_dir(dir.path(), CifarSplit::Test).unwrap_err();
        assert!(
            matches!(&err, DataError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
        );
        assert!(err.to_string().contains("test_batch.bin"), "{err}");
        let err = crate::data::load(&dir.path().join("nowhere"), CifarSplit::Test, 32).unwrap_err();
        assert!(err.to_string().contains("nowhere"), "{err}");
    }

    #[test]
    fn meta_file_gives_class_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META), "a\n\nb\nc\n").unwrap();
        assert_eq!(read_meta(dir.path()).unwrap(), vec!["a", "b", "c"]);
        std::fs::write(dir.path().join(META), "\n").unwrap();
        assert!(read_meta(dir.path()).is_err());
    }
}
