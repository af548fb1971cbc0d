"""The quantized variants as other tools see them: onnx's full checker, ONNX Runtime's Python API
and OpenCV's DNN module, each fed from the file's own metadata; the stored values against numpy."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from conftest import cifar_images, run_cli

VARIANTS = ["int8-weights", "int8-static", "fp16"]


@pytest.fixture(scope="session")
def variants(cnn, standin, tmp_path_factory) -> dict[str, Path]:
    """Every variant of the trained CNN, written by `runtime quantize` beside a copy of it."""
    folder = tmp_path_factory.mktemp("variants")
    model = folder / "cnn.onnx"
    model.write_bytes(cnn.read_bytes())
    done = run_cli(
        "quantize", str(model), "--variant", "all", "--calibration",
        str(standin / "cifar-10-batches-bin"), "--calibration-images", "100",
    )
    assert done.returncode == 0, done.stderr
    return {v: folder / f"cnn.{v}.onnx" for v in VARIANTS} | {"fp32": model}


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def input_from_metadata(meta: dict[str, str], images: np.ndarray) -> np.ndarray:
    """`[N,H,W,3]` uint8 RGB images as the metadata says the model takes them."""
    h, w = map(int, meta["input_size"].split("x"))
    assert images.shape[1:3] == (h, w)
    x = images.astype(np.float32)
    if meta["channel_order"] == "BGR":
        x = x[..., ::-1]
    mean = np.array([float(v) for v in meta["mean"].split(",")], dtype=np.float32)
    std = np.array([float(v) for v in meta["std"].split(",")], dtype=np.float32)
    x = (x * np.float32(float(meta["scale"])) - mean) / std
    if meta["input_layout"] == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.float32)


def run_ort(path: Path, images: np.ndarray) -> np.ndarray:
    model = onnx.load(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = input_from_metadata(metadata(model), images)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_passes_the_full_check_and_keeps_the_interface(variants, variant):
    path = variants[variant]
    onnx.checker.check_model(str(path), full_check=True)
    fp32, model = onnx.load(str(variants["fp32"])), onnx.load(str(path))
    for a, b in [(fp32.graph.input, model.graph.input), (fp32.graph.output, model.graph.output)]:
        assert [(v.name, str(v.type)) for v in a] == [(v.name, str(v.type)) for v in b]
    meta, base = metadata(model), metadata(fp32)
    for key in ["classes", "input_size", "input_layout", "scale", "mean", "std", "channel_order"]:
        assert meta[key] == base[key], key
    assert meta["quantization_variant"] == variant
    assert meta["quantized_from"] == "cnn.onnx"
    assert meta["quantized_from_sha256"] == hashlib.sha256(variants["fp32"].read_bytes()).hexdigest()
    size, full = path.stat().st_size, variants["fp32"].stat().st_size
    assert size < (0.3 if variant.startswith("int8") else 0.55) * full, (size, full)


def test_int8_weights_are_per_channel_symmetric_as_numpy_computes_them(variants):
    fp32 = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(variants["fp32"])).graph.initializer}
    model = onnx.load(str(variants["int8-weights"]))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dq) == 6  # conv1-4, dense1-2
    for node in dq:
        name = node.output[0]
        w = fp32[name]
        axis = next(a.i for a in node.attribute if a.name == "axis") % w.ndim
        other = tuple(i for i in range(w.ndim) if i != axis)
        scale = (np.abs(w).max(axis=other) / np.float32(127)).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        np.testing.assert_array_equal(inits[node.input[0]], q, err_msg=name)
        np.testing.assert_array_equal(inits[node.input[1]], scale, err_msg=name)
        assert not inits[node.input[2]].any()


def test_fp16_weights_are_numpys_float16(variants):
    fp32 = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(variants["fp32"])).graph.initializer}
    model = onnx.load(str(variants["fp16"]))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    casts = [n for n in model.graph.node if n.op_type == "Cast"]
    assert len(casts) == 11  # each weight and bias but dense2.bias (10 values stay float32)
    for node in casts:
        stored = inits[node.input[0]]
        assert stored.dtype == np.float16
        np.testing.assert_array_equal(stored, fp32[node.output[0]].astype(np.float16))


def test_int8_static_biases_are_int32_at_input_times_weight_scale(variants):
    model = onnx.load(str(variants["int8-static"]))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    fp32 = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(variants["fp32"])).graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    checked = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm") or node.input[2] not in producer:
            continue
        x_dq, w_dq, b_dq = (producer[i] for i in node.input[:3])
        assert x_dq.op_type == w_dq.op_type == b_dq.op_type == "DequantizeLinear"
        x_scale = inits[x_dq.input[1]]
        w_scale = inits[w_dq.input[1]]
        b = fp32[node.input[2]]
        np.testing.assert_array_equal(inits[b_dq.input[1]], (x_scale * w_scale).astype(np.float32))
        q = np.rint(b / (x_scale * w_scale).astype(np.float32)).astype(np.int32)
        np.testing.assert_array_equal(inits[b_dq.input[0]], q)
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize("variant", VARIANTS)
def test_onnxruntime_runs_each_variant_from_its_metadata(variants, standin, variant):
    images = cifar_images(standin, 200)
    want, got = run_ort(variants["fp32"], images), run_ort(variants[variant], images)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-4)
    bound = {"fp16": 1e-3, "int8-weights": 0.05, "int8-static": 0.2}[variant]
    assert np.abs(got - want).max() < bound


@pytest.mark.parametrize("variant", VARIANTS)
def test_opencv_dnn_runs_each_variant_from_its_metadata(variants, standin, variant):
    images = cifar_images(standin, 16)
    meta = metadata(onnx.load(str(variants[variant])))
    net = cv2.dnn.readNetFromONNX(str(variants[variant]))
    net.setInput(input_from_metadata(meta, images))
    got = net.forward()
    want = run_ort(variants[variant], images)
    bound = 0.05 if variant == "int8-static" else 1e-4
    assert np.abs(got - want).max() < bound
