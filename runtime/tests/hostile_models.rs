//! Model files and side files with unusable values: each refused with the file and the field
//! named, before anything is allocated from them, by both engines; never a panic, never a
//! plausible answer.

mod common;

use common::{load_on_each_engine, tiny};
use prost::Message;
use runtime::verify::{Evaluation, ReferencePredictions};
use runtime::Classifier;
use std::path::{Path, PathBuf};
use tract_onnx::pb;

/// The tiny classifier with `change` applied to its protobuf.
fn altered(change: impl FnOnce(&mut pb::ModelProto)) -> Vec<u8> {
    let bytes = std::fs::read(tiny()).expect("the fixture");
    let mut model = pb::ModelProto::decode(bytes.as_slice()).expect("an ONNX model");
    change(&mut model);
    model.encode_to_vec()
}

fn with_metadata(key: &str, value: &str) -> Vec<u8> {
    altered(|model| {
        model.metadata_props.retain(|p| p.key != key);
        model.metadata_props.push(pb::StringStringEntryProto {
            key: key.into(),
            value: value.into(),
        });
    })
}

/// The error each engine gives for `bytes`; `what` says which input was expected to fail.
fn refusals(bytes: &[u8], what: &str) -> Vec<String> {
    load_on_each_engine(bytes, "hostile.onnx")
        .into_iter()
        .map(|(engine, loaded)| match loaded {
            Ok(_) => panic!("{engine} loaded {what}"),
            Err(e) => format!("{engine}: {e}"),
        })
        .collect()
}

/// The model loaded by both engines (which must accept it).
fn load_both(bytes: &[u8]) -> Vec<Classifier> {
    load_on_each_engine(bytes, "hostile.onnx")
        .into_iter()
        .map(|(engine, loaded)| loaded.unwrap_or_else(|e| panic!("{engine}: {e}")))
        .collect()
}

#[test]
fn bad_metadata_values_are_refused_by_file_and_field() {
    for (key, value, expect) in [
        ("input_size", "0x0", "input_size"),
        ("input_size", "100000x100000", "input_size"),
        ("input_size", "32", "input_size"),
        ("scale", "0", "scale"),
        ("scale", "NaN", "scale"),
        ("mean", "0,inf,0", "mean"),
        ("std", "0,1,1", "std"),
        ("std", "1,1,NaN", "std"),
        ("input_layout", "NCDHW", "input_layout"),
        ("channel_order", "CMYK", "channel_order"),
        ("classes", "[]", "classes"),
        ("classes", r#"["a","b"]"#, "classes"),
        ("classes", r#"["a","b","c","d"]"#, "classes"),
        ("classes", "{not json", "classes"),
        ("output", "maybe", "output"),
    ] {
        for err in refusals(&with_metadata(key, value), &format!("{key}={value}")) {
            assert!(
                err.contains("hostile.onnx") && err.contains(expect),
                "{key}={value}: {err}"
            );
        }
    }
    load_both(&std::fs::read(tiny()).expect("the fixture"));
}

/// Without metadata the input's own shape sizes the images: a huge one is refused.
#[test]
fn a_huge_input_shape_without_metadata_is_refused() {
    let bytes = altered(|model| {
        model.metadata_props.clear();
        let input = &mut model.graph.as_mut().expect("a graph").input[0];
        let Some(pb::type_proto::Value::TensorType(t)) =
            input.r#type.as_mut().and_then(|t| t.value.as_mut())
        else {
            panic!("a tensor input");
        };
        for d in t.shape.as_mut().expect("a shape").dim.iter_mut().skip(2) {
            d.value = Some(pb::tensor_shape_proto::dimension::Value::DimValue(1 << 40));
        }
    });
    for err in refusals(&bytes, "a 2^40 pixel side") {
        assert!(
            err.contains("hostile.onnx") && err.contains("input_size"),
            "{err}"
        );
    }
}

#[test]
fn shapes_print_as_people_write_them() {
    let info = runtime::ModelInfo::from_bytes(
        &std::fs::read(tiny()).expect("the fixture"),
        Path::new("tiny.onnx"),
    )
    .expect("the fixture's info");
    assert_eq!(info.input.shape_text(), "[batch, 3, 8, 8]");
    assert_eq!(info.output.shape_text(), "[batch, 3]");
}

fn reference_json(dir: &Path, change: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let mut value = serde_json::json!({
        "producer": "test", "data": "data", "fingerprint": "0", "side": 32,
        "samples": 2, "classes": 3, "logits": [0.0, 1.0, 2.0, 0.5, 0.5, 0.5]
    });
    change(&mut value);
    let path = dir.join("model.burn.json");
    std::fs::write(&path, serde_json::to_vec(&value).expect("json")).expect("writing");
    path
}

#[test]
fn bad_reference_predictions_are_refused_by_file_and_field() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let good = reference_json(dir.path(), |_| {});
    assert!(ReferencePredictions::load(&good).is_ok());
    type Change = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "classes",
            Box::new(|v| {
                v["classes"] = 0.into();
                v["logits"] = serde_json::json!([]);
            }),
        ),
        ("samples", Box::new(|v| v["samples"] = 0.into())),
        ("logits", Box::new(|v| v["samples"] = 3.into())),
        (
            "logits",
            Box::new(|v| v["samples"] = serde_json::json!(u64::MAX / 2)),
        ),
        ("side", Box::new(|v| v["side"] = 0.into())),
    ];
    for (field, change) in cases {
        let path = reference_json(dir.path(), change);
        let err = ReferencePredictions::load(&path)
            .expect_err(field)
            .to_string();
        assert!(
            err.contains("model.burn.json") && err.contains(field),
            "{field}: {err}"
        );
    }
}

/// A label outside the classes is an error, not counted as the last class.
#[test]
fn labels_outside_the_classes_are_refused() {
    let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let scores = vec![0.1, 0.2, 0.7, 0.3, 0.3, 0.4];
    assert!(Evaluation::from_scores(scores.clone(), &[2, 1], &classes, 0.0).is_ok());
    let err = Evaluation::from_scores(scores, &[2, 3], &classes, 0.0)
        .expect_err("label 3 of 3 classes")
        .to_string();
    assert!(err.contains("label 3"), "{err}");
}

/// ONNX's standard image keys: written beside ours, read from a model that carries only them,
/// and refused where they ask for pixels this runtime does not feed.
#[test]
fn standard_image_metadata_is_read_and_checked() {
    let standard_only = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        altered(move |model| {
            model.metadata_props.clear();
            for (key, value) in pairs {
                model
                    .metadata_props
                    .push(pb::StringStringEntryProto { key, value });
            }
        })
    };
    for classifier in load_both(&standard_only(&[
        ("Image.BitmapPixelFormat", "Bgr8"),
        ("Image.ColorSpaceGamma", "SRGB"),
        ("Image.NominalPixelRange", "NominalRange_0_255"),
    ])) {
        let config = classifier.input_config();
        assert_eq!(config.channel_order, runtime::ChannelOrder::Bgr);
        assert_eq!(
            (config.scale, config.mean, config.std),
            (1.0, [0.0; 3], [1.0; 3])
        );
        assert_eq!((config.height, config.width), (8, 8));
    }
    for (key, value) in [
        ("Image.BitmapPixelFormat", "Gray8"),
        ("Image.ColorSpaceGamma", "Linear"),
        ("Image.NominalPixelRange", "NominalRange_16_235"),
    ] {
        for err in refusals(&standard_only(&[(key, value)]), value) {
            assert!(err.contains("hostile.onnx") && err.contains(key), "{err}");
        }
    }
    // Written by the trainer's metadata: the CNN's pixels / 255 are Normalized_0_1.
    let written: std::collections::HashMap<String, String> = runtime::InputConfig::unit_rgb(32)
        .to_metadata()
        .into_iter()
        .collect();
    assert_eq!(written["Image.BitmapPixelFormat"], "Rgb8");
    assert_eq!(written["Image.NominalPixelRange"], "Normalized_0_1");
}

/// A weight stored "externally" at a path outside the model's folder is never read: the model
/// is loaded from bytes, and both engines refuse external data there.
#[test]
fn external_data_outside_the_model_is_not_read() {
    let bytes = altered(|model| {
        let graph = model.graph.as_mut().expect("a graph");
        let weight = graph
            .initializer
            .iter_mut()
            .find(|t| t.name == "conv.w")
            .expect("the convolution's weight");
        weight.raw_data.clear();
        weight.float_data.clear();
        weight.data_location = Some(pb::tensor_proto::DataLocation::External as i32);
        for (key, value) in [("location", "../../../../etc/passwd"), ("length", "432")] {
            weight.external_data.push(pb::StringStringEntryProto {
                key: key.into(),
                value: value.into(),
            });
        }
    });
    for err in refusals(&bytes, "external data") {
        assert!(
            err.contains("hostile.onnx") && err.to_lowercase().contains("external data"),
            "{err}"
        );
    }
}

/// A STRING initializer stored as raw bytes, which tract cannot read (it panics inside): a
/// clean error naming the file, or (ONNX Runtime, as nothing reads it) a model that runs.
#[test]
fn a_string_initializer_is_refused_by_both_engines() {
    let bytes = altered(|model| {
        model
            .graph
            .as_mut()
            .expect("a graph")
            .initializer
            .push(pb::TensorProto {
                name: "note".into(),
                data_type: pb::tensor_proto::DataType::String as i32,
                dims: vec![1],
                raw_data: b"abcd".to_vec(),
                ..Default::default()
            });
    });
    for (engine, loaded) in load_on_each_engine(&bytes, "hostile.onnx") {
        match (engine, loaded) {
            // The initializer feeds nothing: ONNX Runtime leaves it alone and runs the model.
            ("ort", Ok(mut classifier)) => {
                let predictions = classifier
                    .classify_planar(&[128; 3 * 8 * 8])
                    .expect("a run");
                assert_eq!(predictions.len(), 1);
            }
            (_, Ok(_)) => panic!("{engine} loaded a raw STRING initializer"),
            (_, Err(e)) => assert!(e.to_string().contains("hostile.onnx"), "{engine}: {e}"),
        }
    }
}

/// The model's operator set (domain `ai.onnx`) set to `version`.
fn with_opset(version: i64) -> Vec<u8> {
    altered(|model| {
        for import in &mut model.opset_import {
            if import.domain.is_empty() {
                import.version = version;
            }
        }
    })
}

/// An operator set newer than an engine knows is refused by it, naming the set and the newest it
/// knows (each engine tells its own: ONNX Runtime through a probe model, tract through its ONNX
/// schema), not run as an older one.
#[test]
fn operator_sets_an_engine_does_not_know_are_refused() {
    for err in refusals(&with_opset(99), "opset 99") {
        assert!(
            err.contains("hostile.onnx")
                && err.contains("operator set 99")
                && err.contains("up to"),
            "{err}"
        );
    }
    // Opset 19: newer than tract's schema, known to ONNX Runtime 1.31.
    let bytes = with_opset(19);
    for (engine, loaded) in load_on_each_engine(&bytes, "hostile.onnx") {
        match engine {
            "tract" => {
                let err = loaded.expect_err("opset 19 on tract").to_string();
                assert!(
                    err.contains("operator set 19") && err.contains("up to 18"),
                    "{err}"
                );
            }
            _ => {
                loaded.unwrap_or_else(|e| panic!("{engine}: {e}"));
            }
        }
    }
    load_both(&with_opset(13));
}
