//! Quantized variants of the committed tiny classifier: their stored values against an
//! independent computation, their outputs against dequantize-then-float, the CLI, and each bad
//! input refused by file and reason with no file written.

use prost::Message;
use runtime::data::Dataset;
use runtime::quantize::{keys, quantize, Calibration, KeepFloat, Method, QuantizeOptions, Variant};
use runtime::{Classifier, EngineChoice};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use tract_onnx::pb;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_classifier.onnx")
}

fn tiny_bytes() -> Vec<u8> {
    std::fs::read(tiny()).expect("the fixture")
}

fn decode(bytes: &[u8]) -> pb::ModelProto {
    pb::ModelProto::decode(bytes).expect("an ONNX model")
}

fn initializers(model: &pb::ModelProto) -> HashMap<String, pb::TensorProto> {
    let graph = model.graph.as_ref().expect("a graph");
    graph
        .initializer
        .iter()
        .map(|t| (t.name.clone(), t.clone()))
        .collect()
}

fn floats(t: &pb::TensorProto) -> Vec<f32> {
    if t.raw_data.is_empty() {
        return t.float_data.clone();
    }
    t.raw_data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// `n` pseudo-random 8x8 images (planar), three classes.
fn images(n: usize, seed: u64) -> Dataset {
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 56) as u8
    };
    let pixels = (0..n * 3 * 64).map(|_| next()).collect();
    Dataset {
        side: 8,
        pixels,
        labels: (0..n).map(|i| (i % 3) as u8).collect(),
        classes: vec!["red".into(), "green".into(), "blue".into()],
    }
}

fn outputs(bytes: &[u8], engine: EngineChoice, set: &Dataset) -> Vec<f32> {
    let mut c = Classifier::builder()
        .engine(engine)
        .build_from_bytes(bytes, "model.onnx")
        .expect("the model loads");
    let input = c.input_config().tensor_from_planar(&set.pixels);
    c.run_tensor(&input, set.len()).expect("the model runs")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// What per-channel symmetric int8 must store, computed here: channel `c` of `dims` along
/// `axis`, scale `max|w_c| / 127`, values rounded half to even.
fn expected_int8(w: &[f32], dims: &[usize], axis: usize) -> (Vec<i8>, Vec<f32>) {
    let inner: usize = dims[axis + 1..].iter().product();
    let channel = |i: usize| (i / inner) % dims[axis];
    let mut scales = vec![0f32; dims[axis]];
    for (i, v) in w.iter().enumerate() {
        scales[channel(i)] = scales[channel(i)].max(v.abs());
    }
    for s in &mut scales {
        *s = if *s > 0.0 { *s / 127.0 } else { 1.0 };
    }
    let q = w
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (v / scales[channel(i)])
                .round_ties_even()
                .clamp(-127.0, 127.0) as i8
        })
        .collect();
    (q, scales)
}

#[test]
fn int8_weights_store_per_channel_values_and_run_as_dequantize_then_float() {
    let source = tiny_bytes();
    let made = quantize(
        &source,
        &tiny(),
        &QuantizeOptions::new(Variant::Int8Weights),
    )
    .unwrap();
    let fp32 = decode(&source);
    let variant = decode(&made.bytes);
    let (before, after) = (initializers(&fp32), initializers(&variant));
    // Conv weights [4,3,3,3] per output channel (axis 0); Gemm B [4,3] with transB=0 per column.
    let mut dequantized = fp32.clone();
    for (name, dims, axis) in [("conv.w", vec![4, 3, 3, 3], 0), ("gemm.w", vec![4, 3], 1)] {
        let (q, scales) = expected_int8(&floats(&before[name]), &dims, axis);
        let stored = &after[&format!("{name}_quantized")];
        assert_eq!(stored.data_type, 3, "{name} stored as int8");
        let stored_q: Vec<i8> = stored.raw_data.iter().map(|&b| b as i8).collect();
        assert_eq!(stored_q, q, "{name}'s int8 values");
        assert_eq!(
            floats(&after[&format!("{name}_scale")]),
            scales,
            "{name}'s scales"
        );
        assert!(
            !after.contains_key(name),
            "{name} no longer stored as float"
        );
        let inner: usize = dims[axis + 1..].iter().product();
        let deq: Vec<f32> = q
            .iter()
            .enumerate()
            .map(|(i, &v)| f32::from(v) * scales[(i / inner) % dims[axis]])
            .collect();
        let graph = dequantized.graph.as_mut().unwrap();
        let t = graph
            .initializer
            .iter_mut()
            .find(|t| t.name == name)
            .unwrap();
        let dims: Vec<i64> = t.dims.clone();
        *t = float_tensor(name, &dims, &deq);
    }
    let set = images(24, 1);
    let reference = outputs(&dequantized.encode_to_vec(), EngineChoice::Tract, &set);
    let got = outputs(&made.bytes, EngineChoice::Tract, &set);
    assert!(
        max_diff(&reference, &got) < 1e-6,
        "{}",
        max_diff(&reference, &got)
    );
    // Biases and the graph's interface are untouched; the metadata says what the file is.
    assert_eq!(floats(&after["conv.b"]), floats(&before["conv.b"]));
    let info = runtime::ModelInfo::from_bytes(&made.bytes, Path::new("v.onnx")).unwrap();
    assert_eq!(info.metadata[keys::VARIANT], "int8-weights");
    assert_eq!(info.metadata[keys::SOURCE], "tiny_classifier.onnx");
    assert_eq!(info.metadata[keys::SOURCE_SHA256].len(), 64);
    assert_eq!(info.input.name, "input");
    assert_eq!(info.metadata["input_size"], "8x8");
    assert_eq!(info.classes.as_deref().map(<[String]>::len), Some(3));
}

#[test]
fn fp16_stores_half_precision_values_behind_a_cast() {
    let source = tiny_bytes();
    let made = quantize(&source, &tiny(), &QuantizeOptions::new(Variant::Fp16)).unwrap();
    let (before, after) = (
        initializers(&decode(&source)),
        initializers(&decode(&made.bytes)),
    );
    let stored = &after["conv.w_fp16"];
    assert_eq!(stored.data_type, 10);
    let bits: Vec<u16> = stored
        .raw_data
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    let expected: Vec<u16> = floats(&before["conv.w"])
        .iter()
        .map(|&v| half::f16::from_f32(v).to_bits())
        .collect();
    assert_eq!(bits, expected);
    // Tensors of under 16 values stay float32.
    assert_eq!(after["gemm.w"].data_type, 1);
    let set = images(24, 2);
    let diff = max_diff(
        &outputs(&source, EngineChoice::Tract, &set),
        &outputs(&made.bytes, EngineChoice::Tract, &set),
    );
    assert!(diff > 0.0 && diff < 1e-3, "{diff}");
}

fn calibrated(
    set: &Dataset,
    keep_float: KeepFloat,
) -> Result<runtime::quantize::Quantized, runtime::Error> {
    let mut options = QuantizeOptions::new(Variant::Int8Static);
    options.engine = EngineChoice::Tract;
    options.keep_float = keep_float;
    options.calibration = Some(Calibration {
        set,
        name: "calibration-set".into(),
        images: 200,
        method: Method::MinMax,
    });
    quantize(&tiny_bytes(), &tiny(), &options)
}

#[test]
fn int8_static_puts_qdq_around_each_quantized_node_with_int32_biases() {
    let set = images(64, 3);
    let made = calibrated(&set, KeepFloat::default()).unwrap();
    // The same inputs give the same file, byte for byte.
    assert_eq!(
        calibrated(&set, KeepFloat::default()).unwrap().bytes,
        made.bytes
    );
    let model = decode(&made.bytes);
    let graph = model.graph.as_ref().unwrap();
    let inits = initializers(&model);
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
    // The input, the ReLU's output (standing for the conv's: the zero point clips as ReLU does),
    // the Gemm's input (after a float GlobalAveragePool) and its output: 4 activations.
    assert_eq!(
        ops.iter().filter(|&&o| o == "QuantizeLinear").count(),
        4,
        "{ops:?}"
    );
    for bias in ["conv.b", "gemm.b"] {
        let q = &inits[&format!("{bias}_quantized")];
        assert_eq!(q.data_type, 6, "{bias} as int32");
    }
    // The ReLU's output has zero point 0: uint8 then holds exactly ReLU's range.
    let zp = &inits["r_zero_point"];
    assert_eq!((zp.data_type, zp.raw_data.as_slice()), (2, &[0u8][..]));
    // The conv bias's scale is the input's scale times each channel's weight scale.
    let x_scale = floats(&inits["input_scale"])[0];
    let w_scales = floats(&inits["conv.w_scale"]);
    let b_scales = floats(&inits["conv.b_scale"]);
    for (b, w) in b_scales.iter().zip(&w_scales) {
        assert_eq!(*b, x_scale * w);
    }
    // Minmax over images in 0..1: the input's range is [0, max pixel / 255].
    let max_pixel = f32::from(*set.pixels.iter().max().unwrap()) / 255.0;
    assert!((x_scale - max_pixel / 255.0).abs() < 1e-9, "{x_scale}");
    let info = runtime::ModelInfo::from_bytes(&made.bytes, Path::new("v.onnx")).unwrap();
    assert_eq!(info.metadata[keys::CALIBRATION_IMAGES], "64");
    assert_eq!(info.metadata[keys::CALIBRATION_DATA], "calibration-set");
    // Quantized compute still classifies as the float model does.
    let test = images(60, 4);
    let (a, b) = (
        outputs(&tiny_bytes(), EngineChoice::Tract, &test),
        outputs(&made.bytes, EngineChoice::Tract, &test),
    );
    assert!(max_diff(&a, &b) < 0.05, "{}", max_diff(&a, &b));
}

#[test]
fn int8_static_keeps_the_nodes_asked_for_in_float() {
    let set = images(32, 5);
    let made = calibrated(
        &set,
        KeepFloat {
            first: true,
            last: false,
            names: Vec::new(),
        },
    )
    .unwrap();
    let inits = initializers(&decode(&made.bytes));
    assert_eq!(
        inits["conv.w"].data_type, 1,
        "the first node's weight stays float"
    );
    assert_eq!(inits["gemm.w_quantized"].data_type, 3);
    assert!(
        !inits.contains_key("input_scale"),
        "the image input is not quantized"
    );
    let err = calibrated(
        &set,
        KeepFloat {
            names: vec!["no-such-node".into()],
            ..KeepFloat::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no-such-node"), "{err}");
}

#[test]
fn bad_inputs_are_refused_by_file_and_reason() {
    // Quantized already.
    let int8 = quantize(
        &tiny_bytes(),
        &tiny(),
        &QuantizeOptions::new(Variant::Int8Weights),
    )
    .unwrap();
    let err = quantize(
        &int8.bytes,
        Path::new("twice.onnx"),
        &QuantizeOptions::new(Variant::Fp16),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("twice.onnx") && err.contains("quantized already"),
        "{err}"
    );
    // An operator the quantizer does not know.
    let mut model = decode(&tiny_bytes());
    let graph = model.graph.as_mut().unwrap();
    graph
        .node
        .iter_mut()
        .find(|n| n.op_type == "Relu")
        .unwrap()
        .op_type = "Mish".into();
    let err = quantize(
        &model.encode_to_vec(),
        Path::new("mish.onnx"),
        &QuantizeOptions::new(Variant::Int8Weights),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("mish.onnx")
            && err.contains("Mish")
            && err.contains("not one the quantizer knows"),
        "{err}"
    );
    // No preprocessing metadata and none given.
    let plain = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_nhwc_plain.onnx");
    let err = quantize(
        &std::fs::read(&plain).unwrap(),
        &plain,
        &QuantizeOptions::new(Variant::Int8Weights),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("tiny_nhwc_plain.onnx") && err.contains("no preprocessing"),
        "{err}"
    );
    // Calibration: none, empty, all one image.
    let err = quantize(
        &tiny_bytes(),
        &tiny(),
        &QuantizeOptions::new(Variant::Int8Static),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("calibration images"), "{err}");
    let empty = images(0, 0);
    let err = calibrated(&empty, KeepFloat::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("calibration-set") && err.contains("no images"),
        "{err}"
    );
    let mut same = images(1, 6);
    for _ in 0..9 {
        let first = same.image(0).to_vec();
        same.pixels.extend_from_slice(&first);
        same.labels.push(0);
    }
    let err = calibrated(&same, KeepFloat::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("same image"), "{err}");
    // No image asked for.
    let set = images(10, 8);
    let mut options = QuantizeOptions::new(Variant::Int8Static);
    options.engine = EngineChoice::Tract;
    options.calibration = Some(Calibration {
        set: &set,
        name: "calibration-set".into(),
        images: 0,
        method: Method::Mse,
    });
    let err = quantize(&tiny_bytes(), &tiny(), &options)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("calibration-set") && err.contains("0 calibration images"),
        "{err}"
    );
}

fn runtime_cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runtime"))
}

/// A folder of calibration images, `<root>/<class>/*.png`.
fn image_folder(root: &Path, set: &Dataset) {
    for i in 0..set.len() {
        let dir = root.join(&set.classes[set.labels[i] as usize]);
        std::fs::create_dir_all(&dir).expect("a class folder");
        let rgb = runtime::images::planar_to_interleaved(set.image(i));
        image::RgbImage::from_raw(8, 8, rgb)
            .expect("an 8x8 image")
            .save(dir.join(format!("{i}.png")))
            .expect("writing a calibration image");
    }
}

#[test]
fn the_cli_writes_every_variant_beside_the_model_and_info_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.onnx");
    std::fs::copy(tiny(), &model).unwrap();
    let calibration = dir.path().join("calibration");
    image_folder(&calibration, &images(30, 7));
    let out = runtime_cli()
        .args([
            "quantize",
            "--variant",
            "all",
            "--engine",
            "tract",
            "--keep-float",
            "none",
        ])
        .arg("--calibration")
        .arg(&calibration)
        .arg(&model)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read(&model).unwrap(),
        tiny_bytes(),
        "the float32 file is untouched"
    );
    for variant in Variant::ALL {
        let path = dir.path().join(format!("tiny.{variant}.onnx"));
        let info = runtime_cli().arg("info").arg(&path).output().unwrap();
        let text = String::from_utf8_lossy(&info.stdout);
        assert!(
            text.contains(&format!("quantization_variant: {variant}")),
            "{text}"
        );
        assert!(text.contains("quantized_from: tiny.onnx"), "{text}");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("calibrated on 30 images"), "{text}");
}

#[test]
fn the_cli_writes_nothing_when_it_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.onnx");
    std::fs::copy(tiny(), &model).unwrap();
    // A CIFAR file cut short as calibration data.
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, vec![0u8; 3000]).unwrap();
    let out = runtime_cli()
        .args(["quantize", "--variant", "int8-static", "--calibration"])
        .arg(&cut)
        .arg(&model)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cut.bin") && !stderr.contains("panicked"),
        "{stderr}"
    );
    // No calibration data at all for the static variant.
    let out = runtime_cli()
        .args(["quantize", "--variant", "int8-static"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with("tiny.int8")),
        "{names:?}"
    );
}
