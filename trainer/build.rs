//! Generates `Vgg16Features` with burn-onnx from `onnx/vgg16_features.onnx`, the normalised VGG16
//! base that `trainer::model::vgg16::source::features_skeleton` writes. The skeleton keeps its
//! weights in an external file, which is filled with zeros here: the code only needs the shapes,
//! and the real weights are loaded at run time from whichever VGG16 file the user names.

use std::io::Write;
use std::path::PathBuf;

/// Output channels of VGG16's 13 convolutions (the skeleton's widths).
const WIDTHS: [usize; 13] = [
    64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512,
];

fn main() -> std::io::Result<()> {
    let skeleton = "onnx/vgg16_features.onnx";
    println!("cargo:rerun-if-changed={skeleton}");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let dir = out.join("skeleton");
    std::fs::create_dir_all(&dir)?;
    let onnx = dir.join("vgg16_features.onnx");
    std::fs::copy(skeleton, &onnx)?;
    let mut bytes = 0;
    let mut in_channels = 3;
    for w in WIDTHS {
        bytes += 4 * (w * in_channels * 9 + w);
        in_channels = w;
    }
    let mut weights =
        std::io::BufWriter::new(std::fs::File::create(dir.join("vgg16_features.bin"))?);
    let zeros = vec![0u8; 1 << 20];
    while bytes > 0 {
        let n = bytes.min(zeros.len());
        weights.write_all(&zeros[..n])?;
        bytes -= n;
    }
    weights.flush()?;
    drop(weights);
    burn_onnx::ModelGen::new()
        .input(&onnx.to_string_lossy())
        .out_dir("model/")
        .load_strategy(burn_onnx::LoadStrategy::None)
        .run_from_script();
    Ok(())
}
