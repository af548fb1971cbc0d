"""Classify a folder of images (or any path Ray reads) on a Ray cluster with Ray Data.

    python -m cifar_onnx.ray_classify MODEL INPUT... -o OUTPUT_DIR [--format parquet|jsonl]

Ray reads the files as bytes (``ray.data.read_binary_files``); a pool of actors, each loading the
model once, classifies them in batches (``map_batches`` over ``ClassifyBatch``, which decodes a
batch on its own threads with the GIL released); the rows (``Prediction.to_dict``: path, ok,
label, index, probability, top-k labels, indices and probabilities, error, engine, provider) are
written as Parquet (the float32 values exactly) or JSON Lines (15 decimals) files under
OUTPUT_DIR. A file that cannot be decoded is a row with ``ok`` false and its error, never a failed
job.

Ray chooses the files: it leaves out paths that start with ``.`` or ``_`` below a folder given
(their first part only), and takes files only with an image extension; ``runtime classify``
tries any file named, and leaves out ``.`` names at every level.

``--address`` joins a running cluster (``auto``, or ``ray://head:10001``); without it, a local
one is started. The model path must be readable on every node (a shared file system, or the
same path on each).

Needs ``pip install "cifar-onnx[ray]"``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Optional

#: The extensions ``runtime classify`` takes from folders (Ray compares them in any case).
IMAGE_EXTENSIONS = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "jfif"]


def schema() -> Any:
    """The Arrow schema of the output rows."""
    import pyarrow as pa

    return pa.schema(
        [
            ("path", pa.string()),
            ("ok", pa.bool_()),
            ("label", pa.string()),
            ("index", pa.int64()),
            ("probability", pa.float32()),
            ("top_labels", pa.list_(pa.string())),
            ("top_indices", pa.list_(pa.int64())),
            ("top_probabilities", pa.list_(pa.float32())),
            ("error", pa.string()),
            ("engine", pa.string()),
            ("provider", pa.string()),
        ]
    )


class ClassifyBatch:
    """A stateful ``map_batches`` callable: loads the model once per actor, then classifies each
    batch of ``{"bytes", "path"}`` rows (an Arrow table) into result rows."""

    def __init__(
        self,
        model: str,
        engine: str = "auto",
        top_k: int = 5,
        batch: int = 32,
        threads: int = 1,
    ) -> None:
        from cifar_onnx import Classifier

        self.classifier = Classifier(model, engine=engine, threads=threads)
        self.top_k, self.batch, self.threads = top_k, batch, threads
        self.schema = schema()

    def __call__(self, table: Any) -> Any:
        import pyarrow as pa

        results = self.classifier.classify_bytes(
            table.column("bytes").to_pylist(),
            names=table.column("path").to_pylist(),
            batch=self.batch,
            top_k=self.top_k,
            threads=self.threads,
        )
        return pa.Table.from_pylist([r.to_dict() for r in results], schema=self.schema)


def classify(
    model: str,
    inputs: list[str],
    output: str,
    *,
    output_format: str = "parquet",
    engine: str = "auto",
    top_k: int = 5,
    actors: Optional[int] = None,
    cpus_per_actor: float = 1.0,
    threads: int = 1,
    rows_per_batch: int = 1024,
    read_cpus: float = 0.25,
) -> int:
    """Runs the job on the Ray cluster this process is connected to (``ray.init`` first) and
    returns the number of rows written. ``actors`` defaults to as many as fit in the cluster's
    CPUs beside one reading task (``read_cpus``): the actors hold their CPUs for the whole job,
    and the files must still be read."""
    import ray

    if output_format not in ("parquet", "jsonl"):
        raise ValueError(f"output format {output_format!r}: expected parquet or jsonl")
    model = os.path.abspath(model)
    if actors is None:
        cpus = ray.cluster_resources().get("CPU", 1)
        actors = max(1, int((cpus - read_cpus) / cpus_per_actor))
    files = ray.data.read_binary_files(
        inputs, include_paths=True, file_extensions=IMAGE_EXTENSIONS, num_cpus=read_cpus
    )
    rows = files.map_batches(
        ClassifyBatch,
        fn_constructor_kwargs={
            "model": model,
            "engine": engine,
            "top_k": top_k,
            "threads": threads,
        },
        batch_size=rows_per_batch,
        batch_format="pyarrow",
        concurrency=actors,
        num_cpus=cpus_per_actor,
    )
    # Materialised once, so that counting does not run the job a second time.
    rows = rows.materialize()
    if output_format == "parquet":
        # float32 values kept exactly.
        rows.write_parquet(output)
    else:
        # pandas writes JSON; 15 decimals is the most it keeps.
        rows.write_json(output, double_precision=15)
    return rows.count()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cifar_onnx.ray_classify",
        description="Classify images with an ONNX model on a Ray cluster (Ray Data).",
    )
    parser.add_argument("model", help="the ONNX model (readable on every node)")
    parser.add_argument("inputs", nargs="+", help="image files or folders (any path Ray reads)")
    parser.add_argument("--output", "-o", required=True, help="folder for the result files")
    parser.add_argument("--format", choices=["parquet", "jsonl"], default="parquet")
    parser.add_argument("--engine", default="auto", help="auto, ort or tract")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument(
        "--actors", type=int, help="classifying actors (default: CPUs / --cpus-per-actor)"
    )
    parser.add_argument("--cpus-per-actor", type=float, default=1.0)
    parser.add_argument(
        "--threads", type=int, default=1, help="decoding and engine threads per actor"
    )
    parser.add_argument("--rows-per-batch", type=int, default=1024)
    parser.add_argument("--address", help="a running cluster to join (default: start one)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local cluster started")
    args = parser.parse_args(argv)

    import ray

    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=args.num_cpus)
    start = time.perf_counter()
    count = classify(
        args.model,
        args.inputs,
        args.output,
        output_format=args.format,
        engine=args.engine,
        top_k=args.top_k,
        actors=args.actors,
        cpus_per_actor=args.cpus_per_actor,
        threads=args.threads,
        rows_per_batch=args.rows_per_batch,
    )
    seconds = time.perf_counter() - start
    print(
        f"{count} files in {seconds:.1f} s ({count / seconds:.0f} files/s); wrote {args.output}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
