//! Classify images with an exported model from your own program.
//!
//! Steps to run:
//! 1. `cargo run -p trainer -- pipeline` (writes `models/cnn.onnx`).
//! 2. `cargo run -p runtime --example embed -- models/cnn.onnx picture.png [more.png ...]`
//!
//! An app that must not load ONNX Runtime depends on
//! `runtime = { path = "...", default-features = false }` (tract only, pure Rust).

use runtime::{Classifier, EngineChoice};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A model that makes tract panic is an error naming the file; this keeps the panic's own
    // message off stderr (the library changes no hook by itself).
    std::panic::set_hook(runtime::panic_hook(std::panic::take_hook()));
    let mut args = std::env::args().skip(1);
    let model = args.next().ok_or("usage: embed MODEL.onnx IMAGE...")?;
    let mut classifier = Classifier::builder()
        .engine(EngineChoice::Auto)
        .build_from_file(&model)?;
    if let Some(why) = classifier.fallback_reason() {
        eprintln!("{why}");
    }
    for image in args {
        match classifier.classify_file(&image) {
            Ok(p) => println!(
                "{image}: {} ({:.1} %) via {}",
                p.class_name,
                100.0 * p.probability,
                classifier.engine_name()
            ),
            Err(e) => eprintln!("{e}"),
        }
    }
    Ok(())
}
