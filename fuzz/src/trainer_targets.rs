//! The trainer's readers under fuzzing (also replayed by `trainer/tests/fuzz_regressions.rs`).

use std::path::Path;

/// A source VGG16 graph's bytes, as `trainer train-vgg16 --vgg16` reads them.
pub fn vgg16_graph(data: &[u8]) {
    use trainer::model::vgg16::source::Vgg16Base;
    if let Ok(base) = Vgg16Base::from_bytes(data, Path::new("fuzz.onnx")) {
        for conv in &base.convs {
            assert_eq!(conv.weight.len(), conv.dims.iter().product::<usize>());
        }
    }
}
