//! A deterministic, procedurally drawn stand-in for CIFAR-10, written in exactly the CIFAR-10
//! binary format, for machines without the real data set.
//!
//! Ten classes of 32x32 colour images: five shapes (disc, ring, square, triangle, cross) and
//! five textures (horizontal stripes, vertical stripes, checkerboard, diagonal stripes, dots).
//! Position, size, colours, background gradient and noise are random per image, and the
//! foreground and background colours are drawn independently of the class, so the mean colour
//! says little about the label: a model has to learn shapes and textures.

use crate::rng::Rng;
use runtime::data::{write_cifar_file, write_meta, CifarSplit, DataError, Dataset, CIFAR_SIDE};
use std::path::{Path, PathBuf};

/// The stand-in's class names, in label order.
pub const CLASSES: [&str; 10] = [
    "disc", "ring", "square", "triangle", "cross", "hstripes", "vstripes", "checker", "diagonal",
    "dots",
];

/// How much stand-in data to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandinConfig {
    pub train: usize,
    pub test: usize,
    pub seed: u64,
}

impl Default for StandinConfig {
    fn default() -> Self {
        StandinConfig {
            train: 10_000,
            test: 2_000,
            seed: 2024,
        }
    }
}

type Rgb = [f32; 3];

fn luminance(c: Rgb) -> f32 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

fn random_colour(rng: &mut Rng) -> Rgb {
    [
        rng.range(0.0, 255.0),
        rng.range(0.0, 255.0),
        rng.range(0.0, 255.0),
    ]
}

/// A foreground colour that stands out from `bg` by at least a modest luminance step.
fn contrasting_colour(rng: &mut Rng, bg: Rgb) -> Rgb {
    loop {
        let c = random_colour(rng);
        if (luminance(c) - luminance(bg)).abs() > 45.0 {
            return c;
        }
    }
}

/// Whether pixel centre `(x, y)` is covered by the class's drawing.
struct Shape {
    class: usize,
    cx: f32,
    cy: f32,
    r: f32,
    angle: f32,
    period: f32,
    dots: Vec<(f32, f32, f32)>,
}

impl Shape {
    fn random(class: usize, rng: &mut Rng) -> Self {
        let r = rng.range(5.0, 11.0);
        let margin = r.min(12.0);
        let mut dots = Vec::new();
        if class == 9 {
            for _ in 0..(5 + rng.below(6)) {
                dots.push((
                    rng.range(3.0, 29.0),
                    rng.range(3.0, 29.0),
                    rng.range(1.2, 2.2),
                ));
            }
        }
        Shape {
            class,
            cx: rng.range(margin, 32.0 - margin),
            cy: rng.range(margin, 32.0 - margin),
            r,
            angle: rng.range(-0.35, 0.35),
            period: rng.range(3.0, 6.0),
            dots,
        }
    }

    fn covers(&self, x: f32, y: f32) -> bool {
        let (dx, dy) = (x - self.cx, y - self.cy);
        // Coordinates in the shape's own slightly rotated frame.
        let (s, c) = self.angle.sin_cos();
        let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
        let d = (dx * dx + dy * dy).sqrt();
        let in_patch = u.abs() <= self.r * 1.2 && v.abs() <= self.r * 1.2;
        let band = |t: f32| (t / self.period).rem_euclid(2.0) < 1.0;
        match self.class {
            0 => d <= self.r,
            1 => d <= self.r && d >= self.r * 0.55,
            2 => u.abs() <= self.r * 0.85 && v.abs() <= self.r * 0.85,
            3 => {
                // Upward triangle: apex at v = -r, base at v = +0.8r.
                let h = (v + self.r) / (1.8 * self.r);
                (0.0..=1.0).contains(&h) && u.abs() <= h * self.r
            }
            4 => {
                (u.abs() <= self.r * 0.3 && v.abs() <= self.r)
                    || (v.abs() <= self.r * 0.3 && u.abs() <= self.r)
            }
            5 => in_patch && band(v),
            6 => in_patch && band(u),
            7 => in_patch && (band(u) ^ band(v)),
            8 => in_patch && band((u + v) * std::f32::consts::FRAC_1_SQRT_2),
            _ => self
                .dots
                .iter()
                .any(|&(px, py, pr)| (x - px).powi(2) + (y - py).powi(2) <= pr * pr),
        }
    }
}

/// Draws image `index` of a split: planar RGB bytes and its label.
fn draw(seed: u64, split: u64, index: usize) -> (Vec<u8>, u8) {
    let mut rng = Rng::new(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ (split << 56) ^ index as u64);
    let label = rng.below(CLASSES.len());
    let bg = random_colour(&mut rng);
    let bg2 = random_colour(&mut rng);
    let fg = contrasting_colour(&mut rng, bg);
    let gradient = rng.range(0.0, 0.6);
    let (gx, gy) = (rng.range(-1.0, 1.0), rng.range(-1.0, 1.0));
    let noise = rng.range(4.0, 28.0);
    let shape = Shape::random(label, &mut rng);
    let plane = CIFAR_SIDE * CIFAR_SIDE;
    let mut out = vec![0u8; 3 * plane];
    for y in 0..CIFAR_SIDE {
        for x in 0..CIFAR_SIDE {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            // Background: a linear blend towards a second colour across the image.
            let t =
                (gradient * (0.5 + (gx * (fx - 16.0) + gy * (fy - 16.0)) / 32.0)).clamp(0.0, 1.0);
            let covered = shape.covers(fx, fy);
            for c in 0..3 {
                let base = if covered {
                    fg[c]
                } else {
                    bg[c] * (1.0 - t) + bg2[c] * t
                };
                let v = base + noise * (rng.unit() + rng.unit() - 1.0);
                out[c * plane + y * CIFAR_SIDE + x] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    (out, label as u8)
}

/// Generates `n` images of a split.
pub fn generate(n: usize, seed: u64, split: CifarSplit) -> Dataset {
    let split_id = match split {
        CifarSplit::Train => 1,
        CifarSplit::Test => 2,
    };
    let mut set = Dataset {
        side: CIFAR_SIDE,
        pixels: Vec::with_capacity(n * 3 * CIFAR_SIDE * CIFAR_SIDE),
        labels: Vec::with_capacity(n),
        classes: CLASSES.iter().map(|s| s.to_string()).collect(),
    };
    for i in 0..n {
        let (pixels, label) = draw(seed, split_id, i);
        set.pixels.extend_from_slice(&pixels);
        set.labels.push(label);
    }
    set
}

/// Writes the stand-in as `<dir>/cifar-10-batches-bin/` (five training batches, a test batch and
/// `batches.meta.txt`) and returns that folder. Files already there with the same content are
/// rewritten identically, since generation is deterministic.
pub fn write(dir: &Path, config: StandinConfig) -> Result<PathBuf, DataError> {
    let out = dir.join("cifar-10-batches-bin");
    let train = generate(config.train, config.seed, CifarSplit::Train);
    let batches = 5;
    let per_batch = config.train.div_ceil(batches);
    for b in 0..batches {
        let lo = (b * per_batch).min(train.len());
        let hi = ((b + 1) * per_batch).min(train.len());
        let part = Dataset {
            side: CIFAR_SIDE,
            pixels: train.pixels[lo * train.image_len()..hi * train.image_len()].to_vec(),
            labels: train.labels[lo..hi].to_vec(),
            classes: train.classes.clone(),
        };
        write_cifar_file(&out.join(format!("data_batch_{}.bin", b + 1)), &part)?;
    }
    let test = generate(config.test, config.seed, CifarSplit::Test);
    write_cifar_file(&out.join("test_batch.bin"), &test)?;
    write_meta(&out, &train.classes)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = generate(50, 7, CifarSplit::Train);
        assert_eq!(a, generate(50, 7, CifarSplit::Train));
        assert_ne!(a.pixels, generate(50, 8, CifarSplit::Train).pixels);
        assert_ne!(a.pixels, generate(50, 7, CifarSplit::Test).pixels);
    }

    #[test]
    fn every_class_appears_and_mean_colour_does_not_separate_them() {
        let set = generate(2000, 1, CifarSplit::Train);
        let mut count = [0usize; 10];
        let mut mean = [0f64; 10];
        for i in 0..set.len() {
            let l = usize::from(set.labels[i]);
            count[l] += 1;
            mean[l] +=
                set.image(i).iter().map(|&v| f64::from(v)).sum::<f64>() / set.image_len() as f64;
        }
        assert!(count.iter().all(|&c| c > 120), "{count:?}");
        let means: Vec<f64> = mean.iter().zip(count).map(|(m, c)| m / c as f64).collect();
        let spread = means.iter().cloned().fold(f64::MIN, f64::max)
            - means.iter().cloned().fold(f64::MAX, f64::min);
        // Per-class mean brightness differs by a few levels at most, against a 0..255 range.
        assert!(spread < 25.0, "class means {means:?}");
    }
}
