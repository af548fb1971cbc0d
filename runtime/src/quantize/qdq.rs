//! The int8 static variant's layout: which activations get QuantizeLinear/DequantizeLinear pairs
//! and with which ranges, and the rewrite that puts them, the int8 weights and the int32 biases
//! into the graph.

use super::calibrate::{bias_int32, uint8_params};
use super::graph::{
    dequantized_weight, f32_tensor, float_tensor, node, per_channel_dequantize, take_initializer,
    tensor, weight_uses, Names, Stored, WeightUse, DATA_MOVEMENT, INT32, UINT8,
};
use std::collections::{HashMap, HashSet};
use tract_onnx::pb;

/// Where the static variant quantizes activations.
#[derive(Debug, Clone, Default)]
pub struct StaticPlan {
    /// The weight uses whose nodes run on integers.
    pub quantized: Vec<WeightUse>,
    /// Activation tensors with their own calibrated range, in graph order.
    pub calibrated: Vec<String>,
    /// Activation tensors that take another's range (the output of a data-movement node takes
    /// its input's), as (tensor, source).
    pub inherited: Vec<(String, String)>,
    /// The quantizable nodes left in float.
    pub kept_float: Vec<String>,
}

/// Decides the static variant's layout, as ONNX Runtime's CPU provider fuses it into integer
/// kernels: every quantized node's activation input and its output (after a ReLU that is its only
/// consumer, which the zero point then implements) pass through QuantizeLinear/DequantizeLinear;
/// a data-movement node whose input is quantized keeps its input's range on its output.
/// The quantizable nodes `keep_float` names (by name, or as the first or last of them) stay
/// float.
pub fn static_plan(graph: &pb::GraphProto, keep_float: &KeepFloat) -> Result<StaticPlan, String> {
    let uses = weight_uses(graph);
    if uses.is_empty() {
        return Err("no Conv, Gemm or MatMul node has a constant float weight to quantize".into());
    }
    let graph_outputs: HashSet<&str> = graph.output.iter().map(|v| v.name.as_str()).collect();
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for input in &n.input {
            consumers.entry(input.as_str()).or_default().push(i);
        }
    }
    let node_name = |i: usize| {
        let n = &graph.node[i];
        if n.name.is_empty() {
            n.output.first().cloned().unwrap_or_default()
        } else {
            n.name.clone()
        }
    };
    let last = uses.len() - 1;
    let mut plan = StaticPlan::default();
    for (k, u) in uses.into_iter().enumerate() {
        let name = node_name(u.node);
        let keep = keep_float.names.contains(&name)
            || (keep_float.first && k == 0)
            || (keep_float.last && k == last);
        if keep {
            plan.kept_float.push(name);
        } else {
            plan.quantized.push(u);
        }
    }
    for name in &keep_float.names {
        if !plan.kept_float.contains(name) {
            return Err(format!(
                "--keep-float {name:?}: no quantizable node has that name"
            ));
        }
    }
    if plan.quantized.is_empty() {
        return Err("every quantizable node is kept in float: nothing to quantize".into());
    }
    let mut own: HashSet<String> = HashSet::new();
    for u in &plan.quantized {
        let n = &graph.node[u.node];
        own.insert(n.input[0].clone());
        let Some(out) = n.output.first() else {
            continue;
        };
        let after = match consumers.get(out.as_str()).map(Vec::as_slice) {
            Some([only]) if graph.node[*only].op_type == "Relu" => {
                graph.node[*only].output.first().unwrap_or(out)
            }
            _ => out,
        };
        if !graph_outputs.contains(after.as_str()) {
            own.insert(after.clone());
        }
    }
    // In graph order: data movement carries a quantized input's range to its output, which then
    // needs no range of its own.
    let mut quantized: HashSet<String> = HashSet::new();
    let inputs: Vec<&str> = graph.input.iter().map(|v| v.name.as_str()).collect();
    for name in inputs {
        if own.contains(name) {
            plan.calibrated.push(name.to_string());
            quantized.insert(name.to_string());
        }
    }
    for n in &graph.node {
        let source = n
            .input
            .first()
            .filter(|i| DATA_MOVEMENT.contains(&n.op_type.as_str()) && quantized.contains(*i));
        for out in n.output.iter().take(1) {
            if graph_outputs.contains(out.as_str()) {
                continue;
            }
            if let Some(source) = source {
                let root = plan
                    .inherited
                    .iter()
                    .find(|(t, _)| t == source)
                    .map_or(source.clone(), |(_, r)| r.clone());
                plan.inherited.push((out.clone(), root));
                quantized.insert(out.clone());
            } else if own.contains(out) {
                plan.calibrated.push(out.clone());
                quantized.insert(out.clone());
            }
        }
    }
    // An input of a quantized node that is a constant or came from nowhere cannot be calibrated.
    for u in &plan.quantized {
        let x = &graph.node[u.node].input[0];
        if !quantized.contains(x) {
            return Err(format!(
                "node {:?}: its input {x:?} is neither a graph input nor a node's output",
                node_name(u.node)
            ));
        }
    }
    Ok(plan)
}

/// Which quantizable nodes the static variant leaves in float.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeepFloat {
    /// The first quantizable node in graph order (the one that reads the image).
    pub first: bool,
    /// The last one (the one that writes the class scores).
    pub last: bool,
    /// Nodes by name.
    pub names: Vec<String>,
}

impl KeepFloat {
    /// From a list: `first`, `last` and node names; `none` (or nothing) keeps every node
    /// quantized.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Self {
        let mut keep = KeepFloat::default();
        for name in names.iter().map(|n| n.as_ref().trim()) {
            match name {
                "first" => keep.first = true,
                "last" => keep.last = true,
                "none" | "" => {}
                other => keep.names.push(other.to_string()),
            }
        }
        keep
    }
}

/// Applies a [`StaticPlan`] with the activations' ranges (`(lo, hi)` per calibrated tensor).
pub fn apply_static(
    model: &mut pb::ModelProto,
    plan: &StaticPlan,
    ranges: &HashMap<String, (f32, f32)>,
) -> Result<(), String> {
    let graph = model.graph.as_mut().ok_or("the model has no graph")?;
    let mut names = Names::of(graph);
    let mut params: HashMap<String, (f32, u8)> = HashMap::new();
    // In plan order, so that names and initializers come out the same on every run.
    let mut order: Vec<&String> = Vec::new();
    for t in &plan.calibrated {
        let (lo, hi) = ranges
            .get(t)
            .copied()
            .ok_or_else(|| format!("no range for {t:?}"))?;
        params.insert(t.clone(), uint8_params(lo, hi));
        order.push(t);
    }
    for (t, source) in &plan.inherited {
        let p = params
            .get(source)
            .copied()
            .ok_or_else(|| format!("no range for {source:?}"))?;
        params.insert(t.clone(), p);
        order.push(t);
    }
    // Weights, then biases at input scale x weight scale.
    let mut front = Vec::new();
    let mut done: HashMap<String, Vec<f32>> = HashMap::new();
    for u in &plan.quantized {
        if !done.contains_key(&u.weight) {
            if let Some((dq, scales)) = dequantized_weight(graph, &mut names, &u.weight, u.axis)? {
                front.push(dq);
                done.insert(u.weight.clone(), scales);
            }
        }
        let (Some(bias), Some(w_scales)) = (&u.bias, done.get(&u.weight)) else {
            continue;
        };
        let x = &graph.node[u.node].input[0];
        let (x_scale, _) = params[x];
        let Some(init) = take_initializer(graph, bias) else {
            continue;
        };
        let Some(b) = float_tensor(&init)? else {
            graph.initializer.push(init);
            continue;
        };
        let (q, scales) = bias_int32(&b.values, x_scale, w_scales);
        let stored = Stored {
            data_type: INT32,
            dims: &b.dims,
            raw: q.iter().flat_map(|v| v.to_le_bytes()).collect(),
            zero_point_bytes: 4,
        };
        front.push(per_channel_dequantize(
            graph, &mut names, bias, stored, &scales, 0,
        ));
    }
    // Activations: consumers read the dequantized tensor.
    let mut pairs: HashMap<String, [pb::NodeProto; 2]> = HashMap::new();
    let mut renamed: HashMap<String, String> = HashMap::new();
    for t in order {
        let (scale, zero_point) = params[t];
        let (qn, dqn) = (
            names.fresh(&format!("{t}_quantized")),
            names.fresh(&format!("{t}_dequantized")),
        );
        let (sn, zn) = (
            names.fresh(&format!("{t}_scale")),
            names.fresh(&format!("{t}_zero_point")),
        );
        graph.initializer.push(f32_tensor(&sn, &[], &[scale]));
        graph
            .initializer
            .push(tensor(&zn, UINT8, &[], vec![zero_point]));
        let q = node(
            "QuantizeLinear",
            &names.fresh(&format!("{t}_QuantizeLinear")),
            &[t, &sn, &zn],
            &qn,
            None,
        );
        let dq = node(
            "DequantizeLinear",
            &names.fresh(&format!("{t}_DequantizeLinear")),
            &[&qn, &sn, &zn],
            &dqn,
            None,
        );
        pairs.insert(t.clone(), [q, dq]);
        renamed.insert(t.clone(), dqn);
    }
    for n in &mut graph.node {
        for input in &mut n.input {
            if let Some(dq) = renamed.get(input) {
                *input = dq.clone();
            }
        }
    }
    let mut nodes = front;
    for t in graph.input.iter().map(|v| v.name.clone()) {
        if let Some(pair) = pairs.remove(&t) {
            nodes.extend(pair);
        }
    }
    for n in std::mem::take(&mut graph.node) {
        let outputs = n.output.clone();
        nodes.push(n);
        for out in outputs {
            if let Some(pair) = pairs.remove(&out) {
                nodes.extend(pair);
            }
        }
    }
    graph.node = nodes;
    Ok(())
}
