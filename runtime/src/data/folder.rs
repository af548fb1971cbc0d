//! Image folders: `<root>/<class>/*.png|jpg`, one sub-folder per class, sorted by name.

use super::{DataError, Dataset};
use crate::batch::has_image_extension;
use crate::preprocess::load_planar;
use std::path::{Path, PathBuf};

/// Files an image-folder read skipped, with the reason for each.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FolderReport {
    /// Files that could not be read, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        entries.push(entry.map_err(|e| DataError::io(dir, e))?.path());
    }
    entries.sort();
    Ok(entries)
}

/// Reads every image under `root/<class>/`, centre-cropped to a square and resized to `side`.
///
/// A file that cannot be decoded is skipped and listed in the report; the read fails only when
/// the folder itself cannot be listed or holds no class with an image.
///
/// # Errors
/// When the folder cannot be listed, has no class folder or more than 256, or no readable image.
pub fn read_image_folder(root: &Path, side: usize) -> Result<(Dataset, FolderReport), DataError> {
    let class_dirs: Vec<PathBuf> = sorted_entries(root)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if class_dirs.is_empty() {
        return Err(DataError::invalid(
            root,
            "no class folders: expected <root>/<class>/*.png or a CIFAR-10 binary folder",
        ));
    }
    if class_dirs.len() > 256 {
        return Err(DataError::invalid(
            root,
            format!(
                "{} class folders; at most 256 are supported",
                class_dirs.len()
            ),
        ));
    }
    let mut set = Dataset {
        side,
        pixels: Vec::new(),
        labels: Vec::new(),
        classes: Vec::new(),
    };
    let mut report = FolderReport::default();
    for (label, dir) in class_dirs.iter().enumerate() {
        set.classes.push(
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        for file in sorted_entries(dir)? {
            if !file.is_file() || !has_image_extension(&file) {
                continue;
            }
            match load_planar(&file, side, side) {
                Ok(planar) => {
                    set.pixels.extend_from_slice(&planar);
                    set.labels.push(label as u8);
                }
                Err(e) => report.skipped.push((file, e.to_string())),
            }
        }
    }
    if set.is_empty() {
        return Err(DataError::invalid(
            root,
            "the class folders hold no readable image",
        ));
    }
    Ok((set, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_from_folders_and_bad_files_skipped() {
        let dir = tempfile::tempdir().unwrap();
        for (class, colour) in [("cat", [255u8, 0, 0]), ("dog", [0, 0, 255])] {
            std::fs::create_dir_all(dir.path().join(class)).unwrap();
            // A wide image: the centre crop keeps its middle.
            image::RgbImage::from_pixel(40, 20, image::Rgb(colour))
                .save(dir.path().join(class).join("a.png"))
                .unwrap();
        }
        std::fs::write(dir.path().join("dog/broken.png"), b"not a png").unwrap();
        std::fs::write(dir.path().join("dog/notes.txt"), b"ignored").unwrap();
        let (set, report) = read_image_folder(dir.path(), 8).unwrap();
        assert_eq!(set.classes, vec!["cat", "dog"]);
        assert_eq!(set.labels, vec![0, 1]);
        assert_eq!(set.side, 8);
        // cat is red: R plane 255, B plane 0.
        assert_eq!(set.image(0)[0], 255);
        assert_eq!(set.image(0)[2 * 64], 0);
        assert_eq!(set.image(1)[2 * 64], 255);
        assert_eq!(report.skipped.len(), 1);
        assert!(report.skipped[0].0.ends_with("broken.png"));
    }

    #[test]
    fn empty_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_image_folder(dir.path(), 8).unwrap_err();
        assert!(err.to_string().contains("no class folders"), "{err}");
        std::fs::create_dir(dir.path().join("empty_class")).unwrap();
        let err = read_image_folder(dir.path(), 8).unwrap_err();
        assert!(err.to_string().contains("no readable image"), "{err}");
    }
}
