"""Files/s of one `runtime classify` process against the Ray Data example on a local Ray cluster,
on the same folder of generated 32x32 PNG files (the stand-in's test images), with the CNN trained
one short epoch. Also times Ray reading the files alone, which bounds the Ray job.

    bash runtime/python/test.sh                 # builds and installs the wheel (and tests it)
    ~/.cache/cifar-onnx-tools/python-venv/bin/python runtime/python/tests/bench_ray.py --files 20000

The programs come from the cargo build (`$CARGO_TARGET_DIR/debug`), or `$CIFAR_ONNX_RUNTIME` and
`$CIFAR_ONNX_TRAINER`.

Prints one JSON object. Not a test: the numbers depend on the machine; compare them within one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import cifar_images, program, run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    args = parser.parse_args()

    import ray

    from cifar_onnx import ray_classify

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trainer = str(program("trainer"))
        subprocess.run(
            [trainer, "data", "--out", str(tmp / "standin"), "--standin-train", "600",
             "--standin-test", "3000"], check=True, capture_output=True,
        )
        subprocess.run(
            [trainer, "train", "--data", str(tmp / "standin" / "cifar-10-batches-bin"),
             "--epochs", "1", "--train-limit", "600", "--test-limit", "100", "--models-dir",
             str(tmp / "models"), "--device", "cpu", "--quiet"], check=True, capture_output=True,
        )
        model = str(tmp / "models" / "cnn.onnx")
        images = cifar_images(tmp / "standin", 3000)
        folder = tmp / "images"
        for i in range(args.files):
            sub = folder / f"part{i % 20:02}"
            sub.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(images[i % len(images)])).save(
                sub / f"{i:06}.png", compress_level=1
            )

        start = time.perf_counter()
        done = run_cli("classify", model, str(folder), "--format", "jsonl", "-o", str(tmp / "cli.jsonl"))
        cli = time.perf_counter() - start
        assert done.returncode == 0, done.stderr

        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        init = time.perf_counter() - start
        report = {
            "files": args.files,
            "cli_seconds": round(cli, 2),
            "cli_files_per_s": round(args.files / cli),
            "ray_cpus": args.cpus,
            "ray_init_seconds": round(init, 2),
        }
        start = time.perf_counter()
        read = ray.data.read_binary_files(
            [str(folder)], include_paths=True, file_extensions=ray_classify.IMAGE_EXTENSIONS,
            num_cpus=0.25,
        ).materialize().count()
        assert read == args.files
        report["ray_read_only_seconds"] = round(time.perf_counter() - start, 2)
        for run in (1, 2):
            start = time.perf_counter()
            written = ray_classify.classify(model, [str(folder)], str(tmp / f"ray{run}"))
            seconds = time.perf_counter() - start
            assert written == args.files
            report[f"ray_job{run}_seconds"] = round(seconds, 2)
            report[f"ray_job{run}_files_per_s"] = round(args.files / seconds)
        ray.shutdown()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
