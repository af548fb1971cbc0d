//! The Triton model repository, checked with Triton's own schema: `config.pbtxt` is parsed by the
//! `model_config_pb2` that PyPI's `tritonclient` ships (with protobuf's strict text parser, so an
//! unknown field fails), and every field is compared with the ONNX file.

use prost::Message;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tract_onnx::pb;

const TRITONCLIENT: &str = "tritonclient==2.73.0";
/// The protobuf runtime that tritonclient 2.73.0's generated code asks for.
const PROTOBUF: &str = "protobuf==6.33.5";

/// A folder holding Triton's `model_config_pb2.py` (taken out of the `tritonclient` wheel by the
/// runtime's own wheel fetcher) and the `protobuf` package it needs (installed there by pip),
/// kept in the build's temporary folder. Made once per test process: the tests run in parallel
/// and would otherwise unpack into the same folder at once.
fn schema_site() -> PathBuf {
    static SITE: OnceLock<PathBuf> = OnceLock::new();
    SITE.get_or_init(make_schema_site).clone()
}

fn make_schema_site() -> PathBuf {
    let site = Path::new(env!("CARGO_TARGET_TMPDIR")).join("triton-schema");
    runtime::wheel::fetch_wheel_file(
        TRITONCLIENT,
        None,
        "tritonclient/grpc/model_config_pb2.py",
        &site.join("model_config_pb2.py"),
    )
    .expect("Triton's model_config_pb2.py from PyPI");
    if site.join("google/protobuf").is_dir() {
        return site;
    }
    // Installed by pip into a folder of its own, then moved into place in one step.
    let unpacked = site.join(".protobuf-unpacking");
    let _ = std::fs::remove_dir_all(&unpacked);
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--target",
        ])
        .arg(&unpacked)
        .arg(PROTOBUF)
        .status()
        .expect("python3 -m pip runs");
    assert!(status.success(), "pip install {PROTOBUF}");
    std::fs::rename(unpacked.join("google"), site.join("google"))
        .expect("the unpacked package moves into place");
    let _ = std::fs::remove_dir_all(&unpacked);
    site
}

/// `config.pbtxt` as Triton reads it, as JSON.
fn parsed_by_triton(config: &Path) -> serde_json::Value {
    let site = schema_site();
    let script = r#"
import json, sys
from google.protobuf import text_format
import model_config_pb2 as pb
c = text_format.Parse(open(sys.argv[1]).read(), pb.ModelConfig())
name = pb.DataType.Name
print(json.dumps({
    "name": c.name, "platform": c.platform, "max_batch_size": c.max_batch_size,
    "input": [[t.name, name(t.data_type), list(t.dims)] for t in c.input],
    "output": [[t.name, name(t.data_type), list(t.dims), t.label_filename] for t in c.output],
    "dynamic_batching": c.HasField("dynamic_batching"),
    "delay": c.dynamic_batching.max_queue_delay_microseconds,
}))
"#;
    let out = Command::new("python3")
        .env("PYTHONPATH", &site)
        .args(["-c", script])
        .arg(config)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "Triton's schema refused {}: {}",
        config.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn a_triton_repository_matches_the_model_field_by_field() {
    let model = fixture("tiny_classifier.onnx");
    let info = runtime::ModelInfo::from_bytes(&std::fs::read(&model).unwrap(), &model).unwrap();
    let dims = |shape: &[Option<usize>]| -> Vec<i64> {
        shape[1..]
            .iter()
            .map(|d| d.map_or(-1, |d| d as i64))
            .collect()
    };
    let repo = tempfile::tempdir().unwrap();
    let options = runtime::triton::TritonOptions {
        name: Some("tiny".into()),
        max_batch_size: 16,
        dynamic_batching: Some(250),
    };
    let made = runtime::triton::write_repository(&model, repo.path(), &options).unwrap();
    assert_eq!(made.dir, repo.path().join("tiny"));
    let config = parsed_by_triton(&made.dir.join("config.pbtxt"));
    assert_eq!(config["name"], "tiny");
    assert_eq!(config["platform"], "onnxruntime_onnx");
    assert_eq!(config["max_batch_size"], 16);
    assert_eq!(info.input.shape[0], None, "the fixture's batch is symbolic");
    let input = &config["input"][0];
    assert_eq!(input[0], info.input.name.as_str());
    assert_eq!(input[1], "TYPE_FP32");
    assert_eq!(input[2], serde_json::json!(dims(&info.input.shape)));
    let output = &config["output"][0];
    assert_eq!(output[0], info.output.name.as_str());
    assert_eq!(output[2], serde_json::json!(dims(&info.output.shape)));
    assert_eq!(
        (config["dynamic_batching"].clone(), config["delay"].clone()),
        (true.into(), 250.into())
    );
    assert_eq!(
        std::fs::read(made.dir.join("1/model.onnx")).unwrap(),
        std::fs::read(&model).unwrap()
    );
    match &info.classes {
        Some(classes) => {
            assert_eq!(output[3], "labels.txt");
            let labels = std::fs::read_to_string(made.dir.join("labels.txt")).unwrap();
            assert_eq!(labels.lines().collect::<Vec<_>>(), *classes);
        }
        None => assert_eq!(output[3], ""),
    }

    // Without batching: max_batch_size 0 and the full dims, batch included; no dynamic batching.
    let unbatched = runtime::triton::TritonOptions {
        max_batch_size: 0,
        dynamic_batching: Some(250),
        ..options
    };
    let made = runtime::triton::write_repository(&model, repo.path(), &unbatched).unwrap();
    let config = parsed_by_triton(&made.dir.join("config.pbtxt"));
    assert_eq!(config["max_batch_size"], 0);
    assert_eq!(
        config["input"][0][2].as_array().map(Vec::len),
        Some(info.input.shape.len())
    );
    assert_eq!(config["dynamic_batching"], false);

    // A name Triton cannot take as a folder is refused.
    let bad = runtime::triton::TritonOptions {
        name: Some("../up".into()),
        ..runtime::triton::TritonOptions::default()
    };
    assert!(runtime::triton::write_repository(&model, repo.path(), &bad).is_err());
}

/// The tiny classifier taking uint8 pixels (cast to float inside) in a fixed batch of 1.
fn uint8_fixed_batch_model(dir: &Path) -> PathBuf {
    use pb::tensor_shape_proto::dimension::Value;
    let bytes = std::fs::read(fixture("tiny_classifier.onnx")).expect("the fixture");
    let mut model = pb::ModelProto::decode(bytes.as_slice()).expect("an ONNX model");
    let graph = model.graph.as_mut().expect("a graph");
    let float_input = graph.input[0].name.clone();
    graph.node.insert(
        0,
        pb::NodeProto {
            op_type: "Cast".into(),
            name: "to_float".into(),
            input: vec!["pixels".into()],
            output: vec![float_input],
            attribute: vec![pb::AttributeProto {
                name: "to".into(),
                r#type: pb::attribute_proto::AttributeType::Int as i32,
                i: pb::tensor_proto::DataType::Float as i64,
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let tensor =
        |value: &mut pb::ValueInfoProto| match value.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            Some(pb::type_proto::Value::TensorType(t)) => {
                t.shape.as_mut().expect("a shape").dim[0].value = Some(Value::DimValue(1));
                t.elem_type
            }
            _ => panic!("a tensor"),
        };
    graph.input[0].name = "pixels".into();
    if let Some(pb::type_proto::Value::TensorType(t)) = graph.input[0]
        .r#type
        .as_mut()
        .and_then(|t| t.value.as_mut())
    {
        t.elem_type = pb::tensor_proto::DataType::Uint8 as i32;
    }
    assert_eq!(tensor(&mut graph.input[0]), 2);
    assert_eq!(tensor(&mut graph.output[0]), 1);
    let path = dir.join("tiny_u8.onnx");
    std::fs::write(&path, model.encode_to_vec()).expect("writing the model");
    path
}

/// `runtime triton-repo` on a model with uint8 input and a fixed batch: the types are the
/// model's and the batch stays in the dims.
#[test]
fn the_cli_writes_the_model_types_and_a_fixed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let model = uint8_fixed_batch_model(dir.path());
    let repo = dir.path().join("repo");
    let out = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .arg("triton-repo")
        .arg(&model)
        .arg(&repo)
        .args(["--name", "tiny_u8", "--dynamic-batching", "100"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("tiny_u8"), "{stderr}");
    let written = repo.join("tiny_u8/config.pbtxt");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        std::fs::read_to_string(&written).unwrap()
    );
    let config = parsed_by_triton(&written);
    assert_eq!(config["max_batch_size"], 0, "the batch is fixed");
    assert_eq!(
        config["input"][0],
        serde_json::json!(["pixels", "TYPE_UINT8", [1, 3, 8, 8]])
    );
    assert_eq!(
        config["output"][0],
        serde_json::json!(["probabilities", "TYPE_FP32", [1, 3], "labels.txt"])
    );
    assert_eq!(config["dynamic_batching"], false);
    assert_eq!(
        std::fs::read(repo.join("tiny_u8/1/model.onnx")).unwrap(),
        std::fs::read(&model).unwrap()
    );

    // A type Triton has none for is refused, naming the file and the tensor.
    let bytes = std::fs::read(&model).unwrap();
    let mut odd = pb::ModelProto::decode(bytes.as_slice()).unwrap();
    if let Some(pb::type_proto::Value::TensorType(t)) = odd.graph.as_mut().unwrap().input[0]
        .r#type
        .as_mut()
        .and_then(|t| t.value.as_mut())
    {
        t.elem_type = pb::tensor_proto::DataType::Complex64 as i32;
    }
    let odd_path = dir.path().join("complex.onnx");
    std::fs::write(&odd_path, odd.encode_to_vec()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .arg("triton-repo")
        .arg(&odd_path)
        .arg(&repo)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("complex.onnx")
            && stderr.contains("pixels")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
}
