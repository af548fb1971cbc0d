"""Shared fixtures: the `runtime` and `trainer` programs, a CNN trained by the trainer, and folders
of images generated from the trainer's CIFAR-10 stand-in (plus files that are not images)."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "runtime" / "tests" / "fixtures"


def program(name: str) -> Path:
    """A binary of the workspace: `$CIFAR_ONNX_<NAME>` (test.sh sets it), else the cargo build's."""
    explicit = os.environ.get(f"CIFAR_ONNX_{name.upper()}")
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    path = Path(explicit) if explicit else target / "debug" / name
    if not path.is_file():
        pytest.fail(f"{path} not found: run runtime/python/test.sh, or `cargo build -p {name}`")
    return path


def onnxruntime_library() -> Path:
    """The library of the `onnxruntime` package installed beside this one."""
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime")
    assert spec and spec.submodule_search_locations, "onnxruntime is not installed"
    capi = Path(list(spec.submodule_search_locations)[0]) / "capi"
    found = sorted(capi.glob("libonnxruntime.so*"), key=lambda p: len(p.name))
    assert found, f"no libonnxruntime in {capi}"
    return found[-1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`runtime ARGS`, with ONNX Runtime from the same package the Python side loads."""
    env = dict(os.environ, ORT_DYLIB_PATH=str(onnxruntime_library()))
    return subprocess.run(
        [str(program("runtime")), *args], env=env, capture_output=True, text=True
    )


def cli_rows(
    model: Path, paths: list[Path], engine: str, top_k: int = 5, extra: list[str] = ()
) -> list[str]:
    """The JSON Lines rows of `runtime classify` (which exits with 1 when a file failed)."""
    done = run_cli(
        "classify", str(model), *map(str, paths), "--engine", engine, "--format", "jsonl",
        "--top-k", str(top_k), *extra,
    )
    rows = done.stdout.splitlines()
    failed = any(not json.loads(row)["ok"] for row in rows)
    assert done.returncode == int(failed), done.stderr
    return rows


def cifar_images(folder: Path, count: int) -> np.ndarray:
    """The first `count` test images of the stand-in in `folder` (CIFAR-10 binary), `[N,32,32,3]`."""
    raw = np.fromfile(folder / "cifar-10-batches-bin" / "test_batch.bin", dtype=np.uint8)
    records = raw.reshape(-1, 1 + 3 * 32 * 32)[:count, 1:]
    return records.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()


@pytest.fixture(scope="session")
def standin(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("standin")
    subprocess.run(
        [str(program("trainer")), "data", "--out", str(folder), "--standin-train", "600",
         "--standin-test", "3000"],
        check=True, capture_output=True,
    )
    return folder


@pytest.fixture(scope="session")
def cnn(standin, tmp_path_factory) -> Path:
    """The article's CNN, trained one short epoch by the trainer and exported to ONNX."""
    models = tmp_path_factory.mktemp("models")
    subprocess.run(
        [str(program("trainer")), "train", "--data", str(standin / "cifar-10-batches-bin"),
         "--epochs", "1", "--train-limit", "600", "--test-limit", "100", "--models-dir",
         str(models), "--device", "cpu", "--quiet"],
        check=True, capture_output=True,
    )
    return models / "cnn.onnx"


@pytest.fixture(scope="session")
def tiny() -> Path:
    """A 3-class 8x8 classifier (red, green, blue) with its preprocessing in its metadata."""
    return FIXTURES / "tiny_classifier.onnx"


def save(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


@pytest.fixture(scope="session")
def mixed_folder(standin, tmp_path_factory) -> Path:
    """Images of every format and mode the runtime reads, in nested folders, at other sizes than
    the model's, with a broken PNG, a cut JPEG, an empty file and a text file among them."""
    folder = tmp_path_factory.mktemp("mixed")
    pixels = cifar_images(standin, 40)
    for i, rgb in enumerate(pixels):
        img = Image.fromarray(rgb)
        sub = folder / f"part{i % 3}"
        kind = i % 8
        if kind == 0:
            save(img, sub / f"{i:03}.png")
        elif kind == 1:
            save(img.resize((64, 48)), sub / f"{i:03}.jpg", quality=90)
        elif kind == 2:
            save(img.convert("L").resize((40, 40)), sub / f"{i:03}.png")
        elif kind == 3:
            save(img.convert("RGBA"), sub / f"{i:03}.webp", lossless=True)
        elif kind == 4:
            save(img.resize((20, 50)), sub / f"{i:03}.bmp")
        elif kind == 5:
            save(img.convert("P"), sub / f"{i:03}.gif")
        elif kind == 6:
            save(img.resize((96, 96)), sub / f"{i:03}.PNG")
        else:
            save(img, sub / f"{i:03}.jpeg", quality=75)
    good = io.BytesIO()
    Image.fromarray(pixels[0]).save(good, format="PNG")
    (folder / "part0" / "broken.png").write_bytes(good.getvalue()[:60])
    jpeg = io.BytesIO()
    Image.fromarray(pixels[1]).save(jpeg, format="JPEG")
    (folder / "part1" / "cut.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (folder / "part2" / "empty.png").write_bytes(b"")
    (folder / "part2" / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="session")
def plain_folder(standin, tmp_path_factory) -> Path:
    """The first 64 stand-in test images as 32x32 PNG files (the CNN's own size)."""
    folder = tmp_path_factory.mktemp("plain")
    for i, rgb in enumerate(cifar_images(standin, 64)):
        save(Image.fromarray(rgb), folder / f"{i:03}.png")
    return folder


def read_json_rows(lines: list[str]) -> list[dict]:
    return [json.loads(line) for line in lines]
