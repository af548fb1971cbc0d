//! Labelled image sets: the CIFAR-10 binary release and `<root>/<class>/*.png` folders.
//!
//! Both load into one [`Dataset`]: 8-bit RGB images stored planar (`C,H,W`, the CIFAR
//! record layout), one label each, and the class names.

mod cifar;
mod folder;

pub use crate::error::DataError;
pub use cifar::{
    parse_meta, read_cifar_bytes, read_cifar_dir, read_cifar_file, write_cifar_file, write_meta,
    CifarSplit, CIFAR_SIDE, RECORD_LEN,
};
pub use folder::{read_image_folder, FolderReport};

use std::path::Path;

/// A labelled set of square RGB images of one size, stored planar.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Side length in pixels.
    pub side: usize,
    /// `len * 3 * side * side` bytes: per image the R plane, then G, then B.
    pub pixels: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u8>,
    /// Class names, indexed by label.
    pub classes: Vec<String>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes of one image.
    pub fn image_len(&self) -> usize {
        3 * self.side * self.side
    }

    /// The planar bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Keeps the first `n` images (all of them when `n` is larger).
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.labels.truncate(n);
            self.pixels.truncate(n * self.image_len());
        }
    }

    /// The same images at `side x side` pixels, resized as `classify` resizes files
    /// ([`crate::preprocess::fit_planar`]: square images are simply scaled).
    pub fn resized(&self, side: usize) -> Dataset {
        if side == self.side {
            return self.clone();
        }
        let mut pixels = Vec::with_capacity(self.len() * 3 * side * side);
        for i in 0..self.len() {
            let rgb = crate::preprocess::planar_to_interleaved(self.image(i));
            let image = image::RgbImage::from_raw(self.side as u32, self.side as u32, rgb)
                .map(image::DynamicImage::ImageRgb8);
            match image {
                Some(img) => pixels.extend(crate::preprocess::fit_planar(&img, side, side)),
                None => pixels.extend(std::iter::repeat_n(0, 3 * side * side)),
            }
        }
        Dataset {
            side,
            pixels,
            labels: self.labels.clone(),
            classes: self.classes.clone(),
        }
    }

    /// How many of this set's images also appear, pixel for pixel, in `other` (labels aside):
    /// a test image that is also a training image measures memory, not generalisation. Sets of
    /// different sides share no image.
    pub fn images_also_in(&self, other: &Dataset) -> usize {
        if self.side != other.side || self.is_empty() || other.is_empty() {
            return 0;
        }
        let mut seen = std::collections::HashSet::with_capacity_and_hasher(
            other.len(),
            std::hash::BuildHasherDefault::<WordHasher>::default(),
        );
        seen.extend(other.pixels.chunks_exact(other.image_len()));
        self.pixels
            .chunks_exact(self.image_len())
            .filter(|image| seen.contains(image))
            .count()
    }

    /// A 64-bit FNV-1a fingerprint of the labels and pixels, to tell whether two runs saw the same data.
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in self.labels.iter().chain(self.pixels.iter()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// A fast, non-cryptographic hash of whole images, eight bytes at a step (the set compares the
/// images themselves on a match, so collisions cost time, never a wrong count).
#[derive(Default)]
struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut words = bytes.chunks_exact(8);
        let mut h = self.0;
        for word in &mut words {
            let w = u64::from_le_bytes(word.try_into().unwrap_or_default());
            h = (h.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in words.remainder() {
            h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        // The set takes its bucket from the low bits: mix the high ones down.
        self.0 ^ (self.0 >> 29)
    }
}

/// Loads the split of a data set found at `path`: a `cifar-10-batches-bin` folder (or a folder
/// holding one), a single CIFAR `.bin` file, or an image folder `<path>/<class>/*.png`
/// (then `split` picks `<path>/train` or `<path>/test` when those exist).
///
/// Images of a folder set are resized to `side`; skipped files are returned in the report.
pub fn load(
    path: &Path,
    split: CifarSplit,
    side: usize,
) -> Result<(Dataset, FolderReport), DataError> {
    if path.is_file() {
        let classes = cifar::read_meta(path.parent().unwrap_or(Path::new(".")))?;
        return Ok((read_cifar_file(path, &classes)?, FolderReport::default()));
    }
    if !path.exists() {
        return Err(DataError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ));
    }
    if let Some(dir) = cifar::find_cifar_dir(path) {
        return Ok((read_cifar_dir(&dir, split)?, FolderReport::default()));
    }
    let sub = path.join(split.folder_name());
    let root = if sub.is_dir() {
        sub
    } else {
        path.to_path_buf()
    };
    read_image_folder(&root, side)
}

#[cfg(test)]
mod tests {
    use super::Dataset;

    fn set(images: &[[u8; 12]], labels: &[u8]) -> Dataset {
        Dataset {
            side: 2,
            pixels: images.concat(),
            labels: labels.to_vec(),
            classes: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn images_also_in_counts_pixel_equal_images_whatever_their_labels() {
        let a = [1u8; 12];
        let b = [2u8; 12];
        let mut a_but_one = a;
        a_but_one[11] = 0;
        let train = set(&[a, b, b], &[0, 1, 1]);
        // `a` with the other label, `b` twice, and an image one byte away from `a`.
        let test = set(&[a, a_but_one, b, b], &[1, 0, 1, 0]);
        assert_eq!(test.images_also_in(&train), 3);
        assert_eq!(train.images_also_in(&test), 3);
        assert_eq!(set(&[a_but_one], &[0]).images_also_in(&train), 0);
        assert_eq!(train.images_also_in(&train), train.len());
        let mut other_side = train.clone();
        other_side.side = 1;
        other_side.pixels.truncate(9);
        assert_eq!(other_side.images_also_in(&train), 0);
    }
}
