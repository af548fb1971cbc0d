//! The runtime's readers under fuzzing (also replayed by `runtime/tests/fuzz_regressions.rs`).

use std::path::Path;

/// An image file's bytes: decoded (bounded), then fitted to two model sizes.
pub fn image_bytes(data: &[u8]) {
    if let Ok(img) = runtime::images::decode_image_bytes(data) {
        let planar = runtime::images::fit_planar(&img, 32, 32);
        assert_eq!(planar.len(), 3 * 32 * 32);
        let planar = runtime::images::fit_planar(&img, 7, 13);
        assert_eq!(planar.len(), 3 * 7 * 13);
    }
}

/// A model file's bytes: its metadata read, then loaded by tract and run on one image.
///
/// The runtime turns panics inside tract into errors. Under the fuzzer, whose panic hook aborts
/// on any panic, a silent hook is put in its place, so that those caught panics do not end the
/// run; one that escapes still aborts it.
pub fn model_bytes(data: &[u8]) {
    #[cfg(fuzzing)]
    {
        static SILENT_HOOK: std::sync::Once = std::sync::Once::new();
        SILENT_HOOK.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    }
    model_bytes_on(
        data,
        runtime::Classifier::builder().engine(runtime::EngineChoice::Tract),
    );
}

/// [`model_bytes`] with the engine `builder` names (the replay runs ONNX Runtime's too).
pub fn model_bytes_on(data: &[u8], builder: runtime::ClassifierBuilder) {
    let name = Path::new("fuzz.onnx");
    if runtime::ModelInfo::from_bytes(data, name).is_err() {
        return;
    }
    if let Ok(mut classifier) = builder.build_from_bytes(data, name) {
        let config = classifier.input_config().clone();
        let image = vec![128u8; 3 * config.height * config.width];
        if let Ok(predictions) = classifier.classify_planar(&image) {
            assert_eq!(predictions.len(), 1);
            assert!(predictions[0].probability.is_finite());
        }
    }
}

/// A CIFAR batch file's bytes, read with ten classes; and the same bytes as a class list.
pub fn cifar_file(data: &[u8]) {
    let classes: Vec<String> = (0..10).map(|i| format!("class{i}")).collect();
    let path = Path::new("fuzz.bin");
    if let Ok(set) = runtime::data::read_cifar_bytes(data, path, &classes) {
        assert_eq!(set.pixels.len(), set.len() * set.image_len());
        assert!(set.labels.iter().all(|&l| usize::from(l) < classes.len()));
    }
    if let Ok(names) = runtime::data::parse_meta(data, Path::new("batches.meta.txt")) {
        assert!((1..=256).contains(&names.len()));
    }
}

/// A `.burn.json` file's bytes.
pub fn burn_json(data: &[u8]) {
    let path = Path::new("fuzz.burn.json");
    if let Ok(preds) = runtime::verify::ReferencePredictions::from_bytes(data, path) {
        assert_eq!(preds.logits.len(), preds.samples * preds.num_classes);
    }
}

/// An image folder: the input, split at `/` bytes into up to eight files, laid out as
/// `<root>/<class a|b>/<n>.png`, read at 8 pixels a side.
pub fn image_folder(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    for (i, part) in data.split(|&b| b == b'/').take(8).enumerate() {
        let class = dir.path().join(if i % 2 == 0 { "a" } else { "b" });
        if std::fs::create_dir_all(&class).is_err()
            || std::fs::write(class.join(format!("{i}.png")), part).is_err()
        {
            return;
        }
    }
    if let Ok((set, report)) = runtime::data::read_image_folder(dir.path(), 8) {
        assert_eq!(set.pixels.len(), set.len() * set.image_len());
        assert!(set.len() + report.skipped.len() <= 8);
    }
}
