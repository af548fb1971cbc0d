//! Micro benchmarks of the runtime's own image path: decoding, fitting to the model's input and
//! building the input tensor (`cargo bench -p runtime --bench preprocess`), and the trainer's
//! check for test images that are also training images. The models themselves
//! are timed by `runtime bench`, and the whole folder path against Python by `tests/bench/run.sh`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use runtime::images::{decode_image_bytes, fit_planar};
use runtime::InputConfig;
use std::hint::black_box;

/// A photo-like image (gradients and some texture) encoded as `format`.
fn encoded(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let t = (x * 7 + y * 13) % 32;
        image::Rgb([
            (x % 256) as u8,
            (y % 256) as u8,
            ((x + y) / 4 % 256) as u8 ^ t as u8,
        ])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format)
        .expect("encoding an in-memory image");
    bytes.into_inner()
}

fn decode_and_fit(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode+fit to 32x32");
    for (name, w, h, format) in [
        ("jpeg 1280x960", 1280, 960, image::ImageFormat::Jpeg),
        ("jpeg 320x240", 320, 240, image::ImageFormat::Jpeg),
        ("png 320x240", 320, 240, image::ImageFormat::Png),
        ("png 32x32", 32, 32, image::ImageFormat::Png),
    ] {
        let bytes = encoded(w, h, format);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
            b.iter(|| {
                let img = decode_image_bytes(black_box(bytes)).expect("decodable");
                fit_planar(&img, 32, 32)
            })
        });
    }
    group.finish();
}

fn tensor(c: &mut Criterion) {
    let mut group = c.benchmark_group("planar to input tensor, batch 32");
    for side in [32usize, 224] {
        let config = InputConfig::unit_rgb(side);
        let planar: Vec<u8> = (0..32 * 3 * side * side).map(|i| (i % 251) as u8).collect();
        group.throughput(Throughput::Elements(32));
        group.bench_with_input(BenchmarkId::from_parameter(side), &planar, |b, planar| {
            b.iter(|| config.tensor_from_planar(black_box(planar)))
        });
    }
    group.finish();
}

/// The trainer's check for test images that are also training images, on CIFAR-10's sizes
/// (50,000 + 10,000 images, 100 of them shared), beside reading the training split from memory.
fn overlap(c: &mut Criterion) {
    use runtime::data::{read_cifar_bytes, Dataset, RECORD_LEN};
    let classes: Vec<String> = (0..10).map(|i| format!("class{i}")).collect();
    // SplitMix64: no two images alike by chance.
    let noise = |n: usize, seed: u64| -> Vec<u8> {
        let mut state = seed;
        let mut bytes = Vec::with_capacity(n + 8);
        while bytes.len() < n {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            bytes.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        bytes.truncate(n);
        bytes
    };
    let records = |n: usize, seed: u64| -> Vec<u8> {
        let mut bytes = noise(n * RECORD_LEN, seed);
        for (i, record) in bytes.chunks_exact_mut(RECORD_LEN).enumerate() {
            record[0] = (i % 10) as u8;
        }
        bytes
    };
    let train_bytes = records(50_000, 1);
    let train = read_cifar_bytes(&train_bytes, "train.bin".as_ref(), &classes).expect("records");
    let mut test: Dataset =
        read_cifar_bytes(&records(10_000, 2), "test.bin".as_ref(), &classes).expect("records");
    let n = test.image_len();
    for i in 0..100 {
        test.pixels[i * 97 * n..(i * 97 + 1) * n].copy_from_slice(train.image(i * 311));
    }
    assert_eq!(test.images_also_in(&train), 100);
    let mut group = c.benchmark_group("CIFAR-10 sizes, 50,000 + 10,000 images");
    group.sample_size(10);
    group.bench_function("test images also in training", |b| {
        b.iter(|| black_box(&test).images_also_in(black_box(&train)))
    });
    group.bench_function("reading the training split (from memory)", |b| {
        b.iter(|| read_cifar_bytes(black_box(&train_bytes), "train.bin".as_ref(), &classes))
    });
    group.finish();
}

criterion_group!(benches, decode_and_fit, tensor, overlap);
criterion_main!(benches);
