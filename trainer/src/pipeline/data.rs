//! The data a run trains and is tested on: found or generated, loaded, and checked.

use super::*;

/// Where the data comes from.
#[derive(Debug, Clone)]
pub enum DataSource {
    /// `<data>/cifar-10-batches-bin` when present, else the stand-in generated into `<data>/standin`.
    Default {
        data_dir: PathBuf,
        standin: StandinConfig,
    },
    /// A CIFAR folder or file, or an image folder, given explicitly.
    Path(PathBuf),
}

/// The loaded splits and where they came from.
pub struct Splits {
    pub source: PathBuf,
    pub standin: bool,
    pub train: Dataset,
    pub test: Dataset,
    /// What a user must know about these splits (printed when they load, and written into each
    /// model's history).
    pub warnings: Vec<String>,
    /// Test images that are also training images, pixel for pixel.
    pub test_images_in_training: usize,
}

/// `<data_dir>/cifar-10-batches-bin` when present, else the stand-in in `<data_dir>/standin`
/// (generated when missing or made with other settings); whether it is the stand-in.
pub(super) fn default_data(data_dir: &Path, standin: &StandinConfig) -> Result<(PathBuf, bool)> {
    let real = data_dir.join("cifar-10-batches-bin");
    if real.is_dir() {
        return Ok((real, false));
    }
    let dir = data_dir.join("standin");
    let stamp = dir.join("standin.json");
    let wanted = format!(
        "{{\"train\":{},\"test\":{},\"seed\":{}}}",
        standin.train, standin.test, standin.seed
    );
    let current = std::fs::read_to_string(&stamp).unwrap_or_default();
    let out = dir.join("cifar-10-batches-bin");
    if current != wanted || !out.join("test_batch.bin").is_file() {
        eprintln!(
            "no CIFAR-10 in {}: generating the stand-in ({} train, {} test images) in {}",
            real.display(),
            standin.train,
            standin.test,
            out.display()
        );
        standin::write(&dir, *standin)?;
        save::write_file(&stamp, wanted.as_bytes())?;
    }
    Ok((out, true))
}

/// Loads (generating the stand-in when needed) the training and test splits.
pub fn load_data(
    source: &DataSource,
    side: usize,
    limits: (Option<usize>, Option<usize>),
) -> Result<Splits> {
    let (path, standin) = match source {
        DataSource::Path(p) => (p.clone(), false),
        DataSource::Default { data_dir, standin } => default_data(data_dir, standin)?,
    };
    let load = |split| -> Result<Dataset> {
        let (set, report) = runtime::data::load(&path, split, side)?;
        for (file, reason) in &report.skipped {
            eprintln!("skipped {}: {reason}", file.display());
        }
        Ok(set)
    };
    let mut train = load(CifarSplit::Train)?;
    let mut test = load(CifarSplit::Test)?;
    if train.classes != test.classes {
        return Err(Error::Data(format!(
            "{}: the training and test splits name different classes ({:?} vs {:?})",
            path.display(),
            train.classes,
            test.classes
        )));
    }
    if let Some(n) = limits.0 {
        train.truncate(n);
    }
    if let Some(n) = limits.1 {
        test.truncate(n);
    }
    let mut present: Vec<u8> = train.labels.clone();
    present.sort_unstable();
    present.dedup();
    if let [only] = present[..] {
        return Err(Error::Data(format!(
            "{}: all {} training images are of one class ({:?}): there is nothing to learn to tell apart",
            path.display(),
            train.len(),
            train.classes.get(usize::from(only)).map_or("?", String::as_str)
        )));
    }
    let mut warnings = Vec::new();
    let test_images_in_training = test.images_also_in(&train);
    if test_images_in_training == test.len() {
        warnings.push(format!(
            "{}: the test set is the training set (all {} test images are training images, as with a single file or a folder without train/ and test/): test accuracy measures memory, not generalisation",
            path.display(),
            test.len()
        ));
    } else if test_images_in_training > 0 {
        warnings.push(format!(
            "{}: {test_images_in_training} of the {} test images are also training images (the same pixels): test accuracy overstates what the model does on new images",
            path.display(),
            test.len()
        ));
    }
    for warning in &warnings {
        eprintln!("WARNING: {warning}");
    }
    Ok(Splits {
        source: path,
        standin,
        train,
        test,
        warnings,
        test_images_in_training,
    })
}
