"""The Python package against the CLI (bit for bit in the same engine), its own calls against each
other, its errors, the GIL, and its type stubs."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cifar_onnx
from cifar_onnx import Classifier
from conftest import FIXTURES, REPO, cifar_images, cli_rows, read_json_rows

ENGINES = ["ort", "tract"]


def f32(x) -> np.float32:
    return np.float32(x)


@pytest.mark.parametrize("engine", ENGINES)
def test_classify_files_writes_the_clis_rows_bit_for_bit(cnn, mixed_folder, engine):
    expected = cli_rows(cnn, [mixed_folder], engine, top_k=5)
    classifier = Classifier(cnn, engine=engine)
    assert classifier.engine == engine
    results = classifier.classify_files(mixed_folder, top_k=5)
    assert [r.to_json() for r in results] == expected
    # 40 images and 3 files that are not (the text file is skipped, as the CLI skips it).
    assert len(results) == 43
    assert sum(not r.ok for r in results) == 3
    # The attributes hold the very values of the row.
    for result, row in zip(results, read_json_rows(expected)):
        assert result.path == row["path"] and result.ok == row["ok"]
        if not result.ok:
            assert result.error == row["error"] and result.label is None
            assert result.probabilities.size == 0
            continue
        assert [(t[0], t[1]) for t in result.top] == [(t["label"], t["class"]) for t in row["top"]]
        assert [f32(t[2]) for t in result.top] == [f32(t["probability"]) for t in row["top"]]
        assert result.label == row["top"][0]["label"] and result.index == row["top"][0]["class"]
        assert result.probabilities.dtype == np.float32
        assert result.probabilities[result.index] == f32(result.probability)
        assert abs(float(result.probabilities.sum()) - 1.0) < 1e-5


@pytest.mark.parametrize("engine", ENGINES)
def test_classify_one_image_writes_the_clis_batch_of_one_rows(cnn, mixed_folder, engine):
    expected = cli_rows(cnn, [mixed_folder], engine, top_k=5, extra=["--batch", "1"])
    classifier = Classifier(cnn, engine=engine)
    for row in expected:
        path = json.loads(row)["path"]
        try:
            got = classifier.classify(Path(path), top_k=5).to_json()
        except cifar_onnx.ImageError as e:
            assert json.loads(row) == {"path": path, "ok": False, "error": str(e)[len(path) + 2 :]}
            continue
        assert got == row


@pytest.mark.parametrize("engine", ENGINES)
def test_one_image_bytes_and_batches_agree(cnn, mixed_folder, engine):
    classifier = Classifier(cnn, engine=engine)
    files = sorted(p for p in mixed_folder.rglob("*") if p.is_file() and p.suffix != ".txt")
    batched = classifier.classify_files(files, batch=7, threads=3)
    assert [r.path for r in batched] == [str(p) for p in files]
    blobs = [p.read_bytes() for p in files]
    in_memory = classifier.classify_bytes(blobs, names=[str(p) for p in files], batch=7, threads=3)
    # The same batches of the same pixels: the same bits.
    assert [r.to_json() for r in in_memory] == [r.to_json() for r in batched]
    for path, blob, result in zip(files, blobs, batched):
        if not result.ok:
            with pytest.raises(cifar_onnx.ImageError) as raised:
                classifier.classify(path)
            assert raised.value.path == str(path)
            assert result.error in str(raised.value)
            continue
        one = classifier.classify(path)
        same = classifier.classify(blob, name=str(path))
        np.testing.assert_array_equal(one.probabilities, same.probabilities)
        # Alone or in a batch of 7: equal to float rounding.
        np.testing.assert_allclose(one.probabilities, result.probabilities, atol=2e-6)
        assert one.path == same.path == str(path)


@pytest.mark.parametrize("engine", ENGINES)
def test_predict_is_classify_without_the_decoding(cnn, standin, plain_folder, engine):
    classifier = Classifier(cnn, engine=engine)
    assert classifier.input_size == (32, 32)
    pixels = cifar_images(standin, 64)
    probabilities = classifier.predict(pixels, batch=24)
    assert probabilities.shape == (64, 10) and probabilities.dtype == np.float32
    by_files = classifier.classify_files(plain_folder, batch=24)
    np.testing.assert_array_equal(probabilities, np.stack([r.probabilities for r in by_files]))
    # Any strides (an image's place in a batch may change the last bit); one image without its
    # batch axis.
    reversed_view = pixels[::-1]
    assert not reversed_view.flags.c_contiguous
    np.testing.assert_allclose(classifier.predict(reversed_view), probabilities[::-1], atol=2e-6)
    np.testing.assert_array_equal(
        classifier.predict(reversed_view), classifier.predict(reversed_view.copy())
    )
    np.testing.assert_allclose(classifier.predict(pixels[5])[0], probabilities[5], atol=2e-6)


def test_predict_refuses_what_is_not_a_batch_of_the_models_images(cnn):
    classifier = Classifier(cnn, engine="tract")
    for shape in [(2, 16, 16, 3), (2, 32, 32, 4), (32, 32), (0, 32, 32, 3), (1, 1, 32, 32, 3)]:
        with pytest.raises(cifar_onnx.InputError, match=r"\[N, (H, W|32, 32), 3\]"):
            classifier.predict(np.zeros(shape, np.uint8))
    with pytest.raises(TypeError):
        classifier.predict(np.zeros((1, 32, 32, 3), np.float32))


def test_a_model_that_makes_tract_panic_is_an_error_and_nothing_more():
    # tract panics reading a raw STRING initializer; the error is all that shows, on stderr too.
    model = REPO / "fuzz" / "regressions" / "model_bytes" / "tract_string_initializer_raw_data.onnx"
    script = (
        "import cifar_onnx, sys\n"
        "try: cifar_onnx.Classifier(sys.argv[1], engine='tract')\n"
        "except cifar_onnx.Error as e: print('refused:', e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(model)], capture_output=True, text=True, check=True
    )
    assert "refused:" in done.stdout and model.name in done.stdout, done.stdout
    assert done.stderr == "", done.stderr


def test_errors_say_the_file_and_the_reason(cnn, mixed_folder, tmp_path):
    missing = tmp_path / "missing.onnx"
    with pytest.raises(cifar_onnx.ModelError, match="missing.onnx") as raised:
        Classifier(missing)
    assert raised.value.path == str(missing)
    with pytest.raises(cifar_onnx.ModelError, match="not a usable model"):
        Classifier(FIXTURES / "not_an_image.onnx", engine="tract")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07garbage" * 100)
    with pytest.raises(cifar_onnx.Error, match="garbage.onnx"):
        Classifier(garbage, engine="tract")
    with pytest.raises(ValueError, match="unknown engine"):
        Classifier(cnn, engine="fast")
    with pytest.raises(ValueError, match="unknown execution provider"):
        Classifier(cnn, providers=["tpu"])
    # A process loads ONNX Runtime once: a fresh one tries the library given.
    loaded = subprocess.run(
        [sys.executable, "-c", "import cifar_onnx, sys\n"
         "try: cifar_onnx.Classifier(sys.argv[1], engine='ort', ort_library=sys.argv[2])\n"
         "except cifar_onnx.EngineError as e: print(e)", str(cnn), str(tmp_path / "nothing.so")],
        capture_output=True, text=True, check=True,
    )
    assert "ONNX Runtime is not available" in loaded.stdout and "nothing.so" in loaded.stdout
    classifier = Classifier(cnn, engine="tract")
    with pytest.raises(cifar_onnx.ImageError, match=r"<bytes>.*cannot decode"):
        classifier.classify(b"not an image")
    with pytest.raises(TypeError, match="a path or the bytes"):
        classifier.classify(42)
    [gone] = classifier.classify_files([tmp_path / "no.png"])
    assert not gone.ok and "no such file" in gone.error
    with pytest.raises(ValueError, match="2 names for 1 images"):
        classifier.classify_bytes([b"x"], names=["a", "b"])
    with pytest.raises(ValueError, match="providers is empty"):
        Classifier(cnn, providers=[])
    for call, what in [
        (lambda: classifier.classify_files([], batch=5000), "batch must be from 1 to 4096"),
        (lambda: classifier.classify_files([], threads=0), "threads must be from 1 to 1024"),
        (lambda: classifier.classify(b"x", top_k=0), "top_k must be from 1"),
        (lambda: classifier.predict(np.zeros((1, 32, 32, 3), np.uint8), batch=0), "batch must"),
        (lambda: Classifier(cnn, threads=100_000), "threads must be from 1 to 1024"),
    ]:
        with pytest.raises(ValueError, match=what):
            call()
    # Every error has a path, None where no file is involved.
    with pytest.raises(cifar_onnx.InputError) as raised:
        classifier.predict(np.zeros((1, 8, 8, 3), np.uint8))
    assert raised.value.path is None
    # A file name given as bytes is read as an image, and the message says so.
    png = next(mixed_folder.rglob("*.png"))
    with pytest.raises(cifar_onnx.ImageError, match="str or pathlib.Path"):
        classifier.classify(str(png).encode())
    # memoryview and bytearray are bytes; any iterable of paths will do.
    blob = png.read_bytes()
    same = [classifier.classify(b, name="x") for b in (blob, bytearray(blob), memoryview(blob))]
    assert len({p.to_json() for p in same}) == 1
    assert len(classifier.classify_files(iter([png, str(png)]))) == 2
    assert issubclass(cifar_onnx.ImageError, cifar_onnx.Error)
    assert issubclass(cifar_onnx.Error, Exception)


def test_info_and_fallback(tiny, cnn):
    tract = Classifier(tiny, engine="tract")
    info = tract.info()
    assert info["classes"] == ["red", "green", "blue"] == tract.classes
    assert info["input"]["shape"] == [None, 3, 8, 8]
    assert info["input"]["shape_text"] == "[batch, 3, 8, 8]"
    assert info["preprocessing"]["input_size"] == "8x8"
    assert info["engine"] == "tract" and info["fallback_reason"] is None
    assert info["num_classes"] == 3 and info["outputs_probabilities"] is True
    auto = Classifier(cnn)
    assert auto.engine == "ort" and auto.provider == "cpu"
    # No GPU build of ONNX Runtime here: CUDA, asked for first by default, was passed over.
    assert "cuda" in auto.fallback_reason
    assert "Classifier(" in repr(auto) and "engine=\"ort\"" in repr(auto)
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 230
    buffer = io.BytesIO()
    Image.fromarray(red).save(buffer, format="PNG")
    prediction = tract.classify(buffer.getvalue(), top_k=2)
    assert prediction.label == "red" and len(prediction.top) == 2
    assert "Prediction(" in repr(prediction)
    row = prediction.to_dict()
    assert row["label"] == "red" and row["top_labels"][0] == "red" and row["ok"] is True
    assert json.loads(prediction.to_json())["top"][0]["label"] == "red"


@pytest.mark.parametrize("call", ["predict", "classify_bytes"])
def test_the_engine_runs_without_the_gil(cnn, standin, call):
    """While one thread is in the engine, another runs Python code: the longest pause the
    main thread sees is a small part of the call."""
    classifier = Classifier(cnn, engine="tract", threads=1)
    pixels = np.concatenate([cifar_images(standin, 500)] * 4)
    if call == "predict":
        work = lambda: classifier.predict(pixels)  # noqa: E731
    else:
        encoded = []
        for rgb in pixels[:1000]:
            buffer = io.BytesIO()
            Image.fromarray(rgb).save(buffer, format="PNG")
            encoded.append(buffer.getvalue())
        work = lambda: classifier.classify_bytes(encoded, threads=1)  # noqa: E731
    start = time.perf_counter()
    work()
    alone = time.perf_counter() - start
    assert alone > 0.2, f"the call took {alone:.3f} s, too short to tell"
    worker = threading.Thread(target=work)
    longest, last = 0.0, time.perf_counter()
    worker.start()
    while worker.is_alive():
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    worker.join()
    assert longest < alone / 4, f"the main thread stopped for {longest:.3f} s of {alone:.3f} s"


def test_the_stubs_describe_the_module():
    """Every public name and method has a stub, and every stub names something real."""
    stub = Path(cifar_onnx.__file__).with_name("_native.pyi")
    assert (stub.parent / "py.typed").is_file()
    tree = ast.parse(stub.read_text())
    stubbed = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            stubbed[node.name] = {
                n.name for n in node.body if isinstance(n, ast.FunctionDef)
            } | {
                n.target.id
                for n in node.body
                if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
            }
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stubbed[node.target.id] = set()
    exported = set(cifar_onnx.__all__)
    assert exported <= set(stubbed), exported - set(stubbed)
    for name in ("Classifier", "Prediction"):
        real = {m for m in dir(getattr(cifar_onnx, name)) if not m.startswith("_")}
        assert real == stubbed[name] - {"__init__"}, (name, real ^ stubbed[name])
    # Parameter names and defaults, as the extension declares them.
    stub_functions = {
        (cls.name, f.name): f
        for cls in tree.body
        if isinstance(cls, ast.ClassDef)
        for f in cls.body
        if isinstance(f, ast.FunctionDef)
    }
    checked = 0
    for (cls, method), node in stub_functions.items():
        owner = getattr(cifar_onnx, cls)
        real = owner if method == "__init__" else getattr(owner, method)
        text = getattr(real, "__text_signature__", None)
        if not text:
            continue
        declared = ast.parse(f"def f{text.replace('$', '')}: pass").body[0].args
        def params(args):
            names = [a.arg for a in args.args if a.arg not in ("self", "cls", "type")]
            defaults = [ast.unparse(d) for d in args.defaults]
            return names, defaults
        assert params(declared) == params(node.args), (cls, method, text)
        checked += 1
    assert checked >= 8, checked
