"""Runs our tools and their usual peers side by side and prints one markdown table.

Started by `tests/bench/run.sh`, which builds the Rust binaries and the Python virtualenv first.
Each measurement runs in its own process, ours and the peer's interleaved (A B, then B A, ...),
and the table shows the median over the repeats with the ratio ours / peer, and each process's
peak resident memory. Where two rows compare against the same runs (ort against Python and against
tract), those runs are shared, interleaved with both.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PEERS = [sys.executable, os.path.join(HERE, "peers.py")]

SIZES = {
    # train/test images for the CNN, for VGG16, folder images, timed inference runs, repeats
    "full": dict(cnn_train=2000, vgg_train=1000, test=500, epochs=2, images=2000, runs=20, repeats=3, calibration=200),
    "quick": dict(cnn_train=200, vgg_train=100, test=100, epochs=1, images=60, runs=2, repeats=1, calibration=20),
}


def timed(cmd):
    """Runs one process and returns (stdout, wall seconds, its peak RSS in MiB).

    The peak comes from GNU time, which forks the command from its own small process: a child
    forked from this Python process would count this process's memory as its own.
    """
    with tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-q", "-f", "%M", "-o", rss.name, *cmd], cwd=ROOT,
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
        return proc.stdout, wall, int(rss.read().split()[-1]) / 1024.0


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


def read_answers(path, ours):
    """{file: (label, probability)} of a classify run's CSV: ours (with a header and a status
    column), or the peer's (path,label,probability)."""
    answers = {}
    with open(path, newline="") as f:
        rows = csv.reader(f)
        if ours:
            head = next(rows)
            at = {k: head.index(k) for k in ("path", "status", "label_1", "probability_1")}
        for row in rows:
            if ours:
                if row[at["status"]] == "ok":
                    answers[row[at["path"]]] = (row[at["label_1"]], float(row[at["probability_1"]]))
            else:
                answers[row[0]] = (row[1], float(row[2]))
    return answers


def check_same_answers(name, work):
    """The classify runs' answers on the same files: our two engines the same to 1e-4 (one
    preprocessing, two engines); the peer (PIL's decoders and resize, which differ from ours by a
    few levels a pixel) on the same top-1 class for at least 90 % of the files, and within 0.05 of
    our probability on average where it is. Fails the run."""
    ort, tract = (read_answers(os.path.join(work, f"{e}.csv"), True) for e in ("ort", "tract"))
    peer = read_answers(os.path.join(work, "peer.csv"), False)
    assert ort.keys() == tract.keys() == peer.keys() and ort, f"{name}: the runs classified different files"
    for path, (label, prob) in ort.items():
        assert tract[path][0] == label and abs(tract[path][1] - prob) < 1e-4, f"{name}: ort and tract differ on {path}"
    same = [path for path, (label, _) in ort.items() if peer[path][0] == label]
    share = len(same) / len(ort)
    diffs = [abs(peer[p][1] - ort[p][1]) for p in same] or [1.0]
    mean = sum(diffs) / len(diffs)
    print(f"{name}: the peer names our top-1 class for {share:.1%} of {len(ort)} files; "
          f"probability difference {mean:.4f} on average, {max(diffs):.4f} at most", file=sys.stderr)
    assert share >= 0.9 and mean < 0.05, f"{name}: the peer's answers differ from ours"


def make_images(folder, count, seed=3):
    """Images of mixed sizes and kinds, as a user's folder would hold: JPEG and PNG, RGB,
    grayscale and RGBA, from thumbnails to photos."""
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    for i in range(count):
        kind = rng.random()
        side = [(32, 128), (128, 512), (512, 1280)][0 if kind < 0.4 else 1 if kind < 0.8 else 2]
        w, h = rng.randint(*side), rng.randint(*side)
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * rng.random() * 3 + yy * rng.random()) % 256 for _ in range(3)], -1)
        noise = nprng.integers(0, 48, (h, w, 3))
        img = Image.fromarray(((base + noise) % 256).astype(np.uint8), "RGB")
        mode = rng.random()
        if mode < 0.6:
            img.save(os.path.join(folder, f"img{i:05}.jpg"), quality=90)
        elif mode < 0.8:
            img.convert("L").save(os.path.join(folder, f"img{i:05}.png"))
        elif mode < 0.9:
            img.convert("RGBA").save(os.path.join(folder, f"img{i:05}.png"))
        else:
            img.save(os.path.join(folder, f"img{i:05}.png"))


class Table:
    def __init__(self):
        self.rows = []

    def add(self, what, unit, key, ours_name, ours_runs, peer_name, peer_runs, higher_is_better=True):
        """One row: the medians of `key` over each side's runs, their ratio, and the median RSS."""
        ours, peer = median_of(ours_runs, key), median_of(peer_runs, key)
        ours_rss, peer_rss = median_of(ours_runs, "rss"), median_of(peer_runs, "rss")
        ratio = ours / peer if higher_is_better else peer / ours
        self.rows.append((what, ours_name, f"{ours:,.1f} {unit}", peer_name, f"{peer:,.1f} {unit}",
                          f"{ratio:.2f}x", f"{ours_rss:,.0f} / {peer_rss:,.0f}"))

    def markdown(self):
        head = ("measurement", "ours", "value", "peer", "value", "ours / peer", "peak RSS MiB (ours / peer)")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)


def median_of(samples, key):
    return statistics.median(s[key] for s in samples)


def interleave(repeats, *runs):
    """Calls each of `runs` `repeats` times, interleaved (A B C, then B C A, ...); returns the
    results of each, in the order given."""
    results = [[] for _ in runs]
    for i in range(repeats):
        for j in range(len(runs)):
            k = (i + j) % len(runs)
            results[k].append(runs[k]())
    return results


def quantize_rows(runtime, models, cifar, size):
    """Our variants against onnxruntime's own quantize_static and quantize_dynamic on the same
    float32 file and calibration images: size, accuracy and top-1 agreement with the float32 file
    on each engine (`runtime verify`), and images/s at batch 32 on each engine (`runtime bench`,
    the files interleaved, median of the repeats)."""
    lines = ["| model | file | MB | accuracy ort / tract | top-1 agreement with fp32, ort / tract | "
             "ort img/s (x fp32) | tract img/s (x fp32) | made in s |",
             "|---|---|---|---|---|---|---|---|"]
    calibration = str(size["calibration"])
    for name in ("cnn", "vgg16"):
        fp32 = os.path.join(models, f"{name}.onnx")
        files = {"fp32": (fp32, None)}
        start = time.perf_counter()
        timed([runtime, "quantize", fp32, "--variant", "all", "--calibration", cifar,
               "--calibration-images", calibration])
        made = (time.perf_counter() - start) / 3
        for v in ("int8-weights", "int8-static", "fp16"):
            files[f"ours {v}"] = (os.path.join(models, f"{name}.{v}.onnx"), made)
        for method in ("static", "dynamic"):
            out = os.path.join(models, f"{name}.ort-{method}.onnx")
            r = last_json(timed([*PEERS, "quantize", fp32, out, "--method", method, "--calibration", cifar,
                                 "--images", calibration])[0])
            shutil.copy(os.path.join(models, f"{name}.burn.json"), os.path.join(models, f"{name}.ort-{method}.burn.json"))
            files[f"onnxruntime quantize_{method}"] = (out, r["seconds"])
        checks = {}
        for label, (path, _) in files.items():
            # Exits 1 when a file is outside its tolerance; the report is read either way.
            subprocess.run([runtime, "verify", path, "--provider", "cpu"], capture_output=True, text=True)
            report = json.load(open(path[:-len(".onnx")] + ".verify.json"))
            checks[label] = {e["engine"]: e for e in report["engines"]}

        def speed(path, engine):
            def run():
                proc = subprocess.run([runtime, "bench", path, "--engine", engine, "--provider", "cpu", "--batch", "32",
                                       "--runs", str(size["runs"]), "--format", "jsonl"], capture_output=True, text=True)
                return {"ips": last_json(proc.stdout)["images_per_second"] if proc.returncode == 0 else float("nan")}
            return run

        labels = list(files)
        ips = {}
        for engine in ("ort", "tract"):
            runs = interleave(size["repeats"], *[speed(files[l][0], engine) for l in labels])
            for label, r in zip(labels, runs):
                ips[(label, engine)] = median_of(r, "ips")

        def pair(label, key, scale=100.0, unit=" %"):
            vals = []
            for engine in ("ort", "tract"):
                e = checks[label].get(engine, {})
                vals.append(f"{scale * e[key]:.2f}{unit}" if e.get(key) is not None else "not run")
            return " / ".join(vals)

        for label, (path, seconds) in files.items():
            def speed_cell(engine):
                v, base = ips[(label, engine)], ips[("fp32", engine)]
                return "not run" if v != v else f"{v:,.0f} ({v / base:.2f}x)"
            agreement = "-" if label == "fp32" else pair(label, "top1_agreement")
            lines.append(f"| {name} | {label} | {os.path.getsize(path) / 1e6:.2f} | {pair(label, 'accuracy')} | "
                         f"{agreement} | {speed_cell('ort')} | {speed_cell('tract')} | "
                         f"{'-' if seconds is None else f'{seconds:.1f}'} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (keeps the command working)")
    p.add_argument("--repeats", type=int, help="runs of each measurement (median taken)")
    p.add_argument("--bin", required=True, help="folder with the trainer and runtime binaries")
    p.add_argument("--vgg16", required=True, help="the public VGG16 ONNX file")
    p.add_argument("--out", help="also write the table to this file")
    p.add_argument("--only", default="train,infer,classify,quantize", help="comma-separated parts to run")
    args = p.parse_args()
    size = dict(SIZES["quick" if args.quick else "full"])
    if args.repeats:
        size["repeats"] = args.repeats
    parts = set(args.only.split(","))
    trainer, runtime = os.path.join(args.bin, "trainer"), os.path.join(args.bin, "runtime")
    work = tempfile.mkdtemp(prefix="cifar-onnx-bench-")
    table = Table()
    try:
        data = os.path.join(work, "data")
        timed([trainer, "data", "--out", data, "--standin-train", str(max(size["cnn_train"], size["vgg_train"])),
               "--standin-test", str(size["test"])])
        cifar = os.path.join(data, "cifar-10-batches-bin")
        models = os.path.join(work, "models")
        common = ["--data", cifar, "--test-limit", str(size["test"]), "--models-dir", models, "--device", "cpu", "--quiet"]
        epochs = str(size["epochs"])

        def burn_cnn():
            _, _, rss = timed([trainer, "train", *common, "--epochs", epochs, "--train-limit",
                                  str(size["cnn_train"]), "--name", "cnn"])
            h = json.load(open(os.path.join(models, "cnn.history.json")))
            return {"ips": h["epochs"][-1]["images_per_second"], "rss": rss}

        def keras_cnn():
            out, _, rss = timed([*PEERS, "train-cnn", cifar, "--epochs", epochs, "--train-limit",
                                 str(size["cnn_train"]), "--test-limit", str(size["test"])])
            r = last_json(out)
            return {"ips": r["images_per_second"], "rss": rss}

        def burn_vgg():
            shutil.rmtree(os.path.join(models, "cache"), ignore_errors=True)  # a first run: build the cache
            _, _, rss = timed([trainer, "train-vgg16", *common, "--vgg16", args.vgg16, "--vgg-epochs", epochs,
                                  "--train-limit", str(size["vgg_train"]), "--vgg-name", "vgg16"])
            h = json.load(open(os.path.join(models, "vgg16.history.json")))
            total = h["setup_seconds"] + sum(e["seconds"] for e in h["epochs"])
            return {"ips": h["epochs"][-1]["images_per_second"], "total": total, "rss": rss}

        def keras_vgg():
            out, _, rss = timed([*PEERS, "train-vgg16", cifar, args.vgg16, "--epochs", epochs, "--train-limit",
                                 str(size["vgg_train"]), "--test-limit", str(size["test"])])
            r = last_json(out)
            return {"ips": r["images_per_second"], "total": sum(r["epoch_seconds"]), "rss": rss}

        if "train" in parts:
            a, b = interleave(size["repeats"], burn_cnn, keras_cnn)
            table.add(f"train CNN, epoch {epochs} of {size['cnn_train']} images, batch 100", "img/s", "ips",
                      "Burn (flex CPU)", a, "Keras (TF CPU)", b)
            a, b = interleave(size["repeats"], burn_vgg, keras_vgg)
            table.add(f"train VGG16 head, epoch {epochs} of {size['vgg_train']} images", "img/s", "ips",
                      "Burn, feature cache", a, "Keras, recompute", b)
            table.add(f"train VGG16, {epochs} epochs in all (incl. building the cache)", "s", "total",
                      "Burn, feature cache", a, "Keras, recompute", b, higher_is_better=False)
        else:
            burn_cnn()
            burn_vgg()

        onnx = {"CNN": os.path.join(models, "cnn.onnx"), "VGG16": os.path.join(models, "vgg16.onnx")}
        if "infer" in parts:
            runs = str(size["runs"])
            for name, model in onnx.items():
                for batch in (1, 32, 256):
                    def ours(engine):
                        out, _, rss = timed([runtime, "bench", model, "--engine", engine, "--provider", "cpu",
                                             "--batch", str(batch), "--runs", runs, "--format", "jsonl"])
                        return {"ips": last_json(out)["images_per_second"], "rss": rss}

                    def python_ort():
                        out, _, rss = timed([*PEERS, "infer", model, "--batch", str(batch), "--runs", runs])
                        return {"ips": last_json(out)["images_per_second"], "rss": rss}

                    o, p, t = interleave(size["repeats"], lambda: ours("ort"), python_ort, lambda: ours("tract"))
                    table.add(f"infer {name}, batch {batch}", "img/s", "ips", "runtime (ort)", o,
                              "onnxruntime Python", p)
                    table.add(f"infer {name}, batch {batch}", "img/s", "ips", "runtime (tract)", t,
                              "runtime (ort)", o)

        if "classify" in parts:
            images = os.path.join(work, "images")
            make_images(images, size["images"])
            n = size["images"]
            for name, model in onnx.items():
                def ours(engine):
                    _, wall, rss = timed([runtime, "classify", model, images, "--engine", engine, "--provider", "cpu",
                                          "--batch", "32", "--format", "csv", "--output", os.path.join(work, f"{engine}.csv")])
                    return {"fps": n / wall, "rss": rss}

                def python_peer():
                    _, wall, rss = timed([*PEERS, "classify", model, images, "--batch", "32",
                                          "--output", os.path.join(work, "peer.csv")])
                    return {"fps": n / wall, "rss": rss}

                o, t, p = interleave(size["repeats"], lambda: ours("ort"), lambda: ours("tract"), python_peer)
                check_same_answers(name, work)
                for engine, runs in (("ort", o), ("tract", t)):
                    table.add(f"classify a folder of {n} mixed images, {name}", "files/s", "fps",
                              f"runtime classify ({engine})", runs, "PIL + onnxruntime", p)
        if "quantize" in parts:
            quantized = quantize_rows(runtime, models, cifar, size)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    versions = subprocess.run([*PEERS[:1], "-c", "import onnxruntime, PIL, tensorflow; print(f'onnxruntime {onnxruntime.__version__}, Pillow {PIL.__version__}, TensorFlow {tensorflow.__version__}')"],
                              capture_output=True, text=True).stdout.strip()
    header = (f"{datetime.date.today().isoformat()}, {cpu}, {os.cpu_count()} cores, "
              f"median of {size['repeats']} interleaved runs{' (quick sizes)' if args.quick else ''}; peers: {versions}")
    text = header + "\n\n" + table.markdown() + "\n"
    if "quantize" in parts:
        text += "\n" + quantized + "\n"
    print(text)
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
