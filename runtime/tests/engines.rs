//! ort and tract run the same model to the same numbers, at any batch size; bad models are refused.

mod common;

use common::{ensure_ort, tiny};
use runtime::{Classifier, EngineChoice, Error};
use std::path::{Path, PathBuf};

fn pixels(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32 * 192)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24) as u8)
        .collect()
}

#[test]
fn ort_and_tract_agree_at_batch_1_7_64() {
    let lib = ensure_ort();
    let mut ort = Classifier::builder()
        .engine(EngineChoice::Ort)
        .ort_library(&lib)
        .build_from_file(tiny())
        .unwrap();
    let mut tract = Classifier::builder()
        .engine(EngineChoice::Tract)
        .build_from_file(tiny())
        .unwrap();
    assert_eq!((ort.engine_name(), ort.provider().as_str()), ("ort", "cpu"));
    assert_eq!(tract.engine_name(), "tract");
    for (batch, seed) in [(1, 1), (7, 2), (64, 3)] {
        let images = pixels(batch, seed);
        let a = ort.classify_planar(&images).unwrap();
        let b = tract.classify_planar(&images).unwrap();
        assert_eq!(a.len(), batch);
        for (pa, pb) in a.iter().zip(&b) {
            assert_eq!(pa.class, pb.class);
            for (x, y) in pa.probabilities.iter().zip(&pb.probabilities) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
        }
        // Different images give different outputs: the comparison is not vacuous.
        assert!(
            a.windows(2)
                .all(|w| w[0].probabilities != w[1].probabilities)
                || batch == 1
        );
    }
    assert_eq!(
        ort.info().classes.as_deref(),
        Some(&["red".to_string(), "green".into(), "blue".into()][..])
    );
}

#[test]
fn corrupt_and_truncated_models_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"this is not a protobuf \xff\xff\xff\xff").unwrap();
    let bytes = std::fs::read(tiny()).unwrap();
    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    for (path, engine) in [
        (&garbage, EngineChoice::Tract),
        (&truncated, EngineChoice::Auto),
        (&empty, EngineChoice::Tract),
    ] {
        let err = Classifier::builder()
            .engine(engine)
            .build_from_file(path)
            .unwrap_err();
        assert!(matches!(err, Error::BadModel { .. }), "{path:?}: {err}");
        assert!(
            err.to_string()
                .contains(path.file_name().unwrap().to_str().unwrap()),
            "{err}"
        );
    }
    let err = Classifier::builder()
        .build_from_file(dir.path().join("absent.onnx"))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{err}"
    );
}

#[test]
fn models_without_metadata_use_their_input_shape() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut nchw = Classifier::builder()
        .engine(EngineChoice::Tract)
        .build_from_file(dir.join("tiny_classifier.onnx"))
        .unwrap();
    let mut nhwc = Classifier::builder()
        .engine(EngineChoice::Tract)
        .build_from_file(dir.join("tiny_nhwc_plain.onnx"))
        .unwrap();
    let config = nhwc.input_config().clone();
    assert_eq!(
        (config.layout, config.height, config.width),
        (runtime::Layout::Nhwc, 8, 8)
    );
    assert!(nhwc.info().classes.is_none());
    // Same weights, same preprocessing (pixels / 255): the same probabilities.
    let images = pixels(5, 9);
    let a = nchw.classify_planar(&images).unwrap();
    let b = nhwc.classify_planar(&images).unwrap();
    for (pa, pb) in a.iter().zip(&b) {
        assert_eq!(pa.class, pb.class);
        assert_eq!(pb.class_name, pb.class.to_string());
        for (x, y) in pa.probabilities.iter().zip(&pb.probabilities) {
            assert!((x - y).abs() < 1e-5);
        }
    }
    let err = Classifier::builder()
        .engine(EngineChoice::Tract)
        .build_from_file(dir.join("not_an_image.onnx"))
        .unwrap_err();
    assert!(matches!(err, Error::BadModel { .. }), "{err}");
    assert!(err.to_string().contains("rank 2"), "{err}");
}

/// Providers are tried in order; the one that really runs the model is reported, and each one
/// passed over is named with its reason. Without CPU in the list, no GPU is an error.
#[test]
fn execution_providers_fall_back_in_order_and_report_what_ran() {
    use runtime::Provider;
    let lib = ensure_ort();
    let mut preferred = Classifier::builder()
        .engine(EngineChoice::Ort)
        .ort_library(&lib)
        .providers([Provider::TensorRt, Provider::Cuda, Provider::Cpu])
        .build_from_file(tiny())
        .unwrap();
    let notes = preferred.fallback_reason().unwrap_or_default().to_string();
    let gpu_only = Classifier::builder()
        .engine(EngineChoice::Ort)
        .ort_library(&lib)
        .providers([Provider::Cuda])
        .build_from_file(tiny());
    if preferred.provider() == "cpu" {
        // A CPU build of ONNX Runtime (the one fetched through pip): both GPU providers were
        // passed over, each with its reason, and a GPU-only list is refused.
        assert!(
            notes.contains("tensorrt: not in this ONNX Runtime build")
                && notes.contains("cuda: not in this ONNX Runtime build"),
            "{notes}"
        );
        let err = gpu_only.unwrap_err().to_string();
        assert!(
            err.contains("tiny_classifier.onnx") && err.contains("no execution provider of cuda"),
            "{err}"
        );
    } else {
        // A GPU build on a machine where a GPU provider ran.
        assert!(["cuda", "tensorrt"].contains(&preferred.provider().as_str()));
        assert!(gpu_only.is_ok());
    }
    // Whatever ran, it computes what the CPU computes.
    let mut cpu = Classifier::builder()
        .engine(EngineChoice::Ort)
        .ort_library(&lib)
        .providers([Provider::Cpu])
        .build_from_file(tiny())
        .unwrap();
    assert_eq!(cpu.provider(), "cpu");
    assert_eq!(cpu.fallback_reason(), None);
    let images = pixels(5, 9);
    let (a, b) = (
        preferred.classify_planar(&images).unwrap(),
        cpu.classify_planar(&images).unwrap(),
    );
    for (pa, pb) in a.iter().zip(&b) {
        assert_eq!(pa.class, pb.class);
    }
    assert!("cuda,tensorrt,cpu"
        .split(',')
        .map(str::parse::<Provider>)
        .all(|p| p.is_ok()));
    assert!("rocm".parse::<Provider>().unwrap_err().contains("rocm"));
}

#[test]
fn images_in_memory_classify_as_their_files_do() {
    use runtime::batch::{classify_encoded, classify_files, BatchOptions};
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..23u32 {
        let path = dir.path().join(format!("{i:02}.png"));
        let img = image::RgbImage::from_fn(5 + i, 9, |x, y| {
            image::Rgb([(x * 40 + i * 9) as u8, (y * 25) as u8, (i * 11) as u8])
        });
        img.save(&path).unwrap();
        files.push(path);
    }
    std::fs::write(&files[7], b"\x89PNG\r\n\x1a\n cut short").unwrap();
    let encoded: Vec<(PathBuf, Vec<u8>)> = files
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    let mut classifier = Classifier::builder()
        .engine(EngineChoice::Tract)
        .build_from_file(tiny())
        .unwrap();
    let options = BatchOptions {
        batch: 4,
        decode_threads: 3,
    };
    let (mut from_files, mut from_memory) = (Vec::new(), Vec::new());
    classify_files(&mut classifier, &files, options, |o| from_files.push(o));
    classify_encoded(&mut classifier, &encoded, options, |o| from_memory.push(o));
    assert_eq!(from_files.len(), files.len());
    assert_eq!(from_memory.len(), files.len());
    for ((a, b), path) in from_files.iter().zip(&from_memory).zip(&files) {
        assert_eq!((&a.path, &b.path), (path, path));
        assert_eq!(a.result, b.result, "{}", path.display());
    }
    assert!(from_memory[7].result.is_err());
    assert_eq!(from_memory.iter().filter(|o| o.result.is_ok()).count(), 22);
}
