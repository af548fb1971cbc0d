//! A small builder for ONNX graphs, on the protobuf types that tract-onnx maintains: what the
//! exporter and the VGG16 graph surgery share (a leaf: it imports no other module of the crate).

use prost::Message;
use runtime::metadata_keys as keys;
use runtime::InputConfig;
use tract_onnx::pb;

/// ONNX opset the exported graphs use: Softmax over the last axis and every op we emit are stable
/// from 13 on, and every current runtime reads it.
pub const OPSET: i64 = 13;
/// The IR version that goes with opset 13.
const IR_VERSION: i64 = 7;

const FLOAT: i32 = 1;

/// Collects nodes and weights, then writes one `ModelProto`.
#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
}

/// An attribute value of a node.
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
}

impl GraphBuilder {
    /// Adds a float weight tensor.
    pub fn weight(&mut self, name: &str, dims: &[usize], values: Vec<f32>) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), values.len());
        self.initializers.push(pb::TensorProto {
            name: name.to_string(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.to_string()
    }

    /// Adds a float weight whose values live in another file (`location`, from byte `offset`), as
    /// ONNX's external data does. Returns the number of bytes it takes there.
    pub fn external_weight(
        &mut self,
        name: &str,
        dims: &[usize],
        location: &str,
        offset: usize,
    ) -> usize {
        let length = 4 * dims.iter().product::<usize>();
        let entry = |key: &str, value: String| pb::StringStringEntryProto {
            key: key.into(),
            value,
        };
        self.initializers.push(pb::TensorProto {
            name: name.to_string(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            data_location: Some(pb::tensor_proto::DataLocation::External as i32),
            external_data: vec![
                entry("location", location.to_string()),
                entry("offset", offset.to_string()),
                entry("length", length.to_string()),
            ],
            ..Default::default()
        });
        length
    }

    /// Adds a node with one output, named after the node.
    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        let attribute = attrs
            .into_iter()
            .map(|(key, value)| {
                use pb::attribute_proto::AttributeType;
                let mut a = pb::AttributeProto {
                    name: key.to_string(),
                    ..Default::default()
                };
                match value {
                    Attr::Int(i) => {
                        a.r#type = AttributeType::Int as i32;
                        a.i = i;
                    }
                    Attr::Ints(v) => {
                        a.r#type = AttributeType::Ints as i32;
                        a.ints = v;
                    }
                    Attr::Float(f) => {
                        a.r#type = AttributeType::Float as i32;
                        a.f = f;
                    }
                }
                a
            })
            .collect();
        self.nodes.push(pb::NodeProto {
            name: name.to_string(),
            op_type: op.to_string(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.to_string()],
            attribute,
            ..Default::default()
        });
        name.to_string()
    }

    /// Finishes the model: input `input` with a symbolic batch, output `probabilities`
    /// (`[batch, classes]`), and metadata describing the classes and the preprocessing.
    pub fn finish(
        self,
        graph_name: &str,
        last: &str,
        config: &InputConfig,
        classes: &[String],
        extra_metadata: Vec<(String, String)>,
    ) -> Vec<u8> {
        let input_dims: Vec<Dim> = std::iter::once(Dim::Named("batch"))
            .chain(config.shape(1)[1..].iter().map(|&d| Dim::Fixed(d)))
            .collect();
        let mut metadata = vec![
            (
                keys::CLASSES.to_string(),
                serde_json::to_string(classes).unwrap_or_else(|_| "[]".into()),
            ),
            (keys::OUTPUT.to_string(), "probabilities".to_string()),
        ];
        metadata.extend(config.to_metadata());
        metadata.extend(extra_metadata);
        self.finish_graph(
            graph_name,
            ("input", &input_dims),
            (
                last,
                "probabilities",
                &[Dim::Named("batch"), Dim::Fixed(classes.len())],
            ),
            metadata,
        )
    }

    /// Finishes a graph of one float input and one float output. The node writing `last` is
    /// renamed to write `output.1` (the graph's output name).
    pub fn finish_graph(
        self,
        graph_name: &str,
        input: (&str, &[Dim]),
        output: (&str, &str, &[Dim]),
        metadata: Vec<(String, String)>,
    ) -> Vec<u8> {
        let (last, output_name, output_dims) = output;
        let mut nodes = self.nodes;
        if let Some(node) = nodes
            .iter_mut()
            .rev()
            .find(|n| n.output.first().map(String::as_str) == Some(last))
        {
            node.output = vec![output_name.into()];
        }
        let graph = pb::GraphProto {
            name: graph_name.to_string(),
            node: nodes,
            initializer: self.initializers,
            input: vec![value_info(input.0, input.1)],
            output: vec![value_info(output_name, output_dims)],
            ..Default::default()
        };
        let model = pb::ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "trainer".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(graph),
            metadata_props: metadata
                .into_iter()
                .map(|(key, value)| pb::StringStringEntryProto { key, value })
                .collect(),
            ..Default::default()
        };
        model.encode_to_vec()
    }
}

/// One dimension of a graph input or output.
#[derive(Debug, Clone, Copy)]
pub enum Dim<'a> {
    Fixed(usize),
    /// A symbolic dimension (`batch`, `height`, ...).
    Named(&'a str),
}

/// A float tensor's name, type and shape.
fn value_info(name: &str, dims: &[Dim]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = |d: &Dim| Dimension {
        value: Some(match *d {
            Dim::Fixed(v) => Value::DimValue(v as i64),
            Dim::Named(n) => Value::DimParam(n.to_string()),
        }),
        ..Default::default()
    };
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto {
                    dim: dims.iter().map(dim).collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
