"""The GPU check's tables from its models folder and its logs folder: training and verification per
run, the PyTorch peer (torch.log), the int8 static variants' verification, and the runtime's bench
of VGG16 float32 and int8 on each GPU provider (bench-<provider>.<variant>.log).

    python3 tests/gpu/table.py MODELS_DIR LOG_DIR
"""

import glob
import json
import os
import sys


def last_json_line(path):
    try:
        lines = [l for l in open(path) if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except OSError:
        return None


def engine_cells(report):
    """ort's and tract's "agreement / max dp (provider, s)" cells of a `<model>.verify.json`'s
    report (None: not verified)."""
    engines = {}
    if report:
        for e in report["engines"]:
            if e.get("error"):
                engines[e["engine"]] = "not run"
            else:
                engines[e["engine"]] = "%.2f %% / %.1e (%s, %.1f s)" % (
                    100 * e["top1_agreement"], e["max_abs_prob_diff"], e["provider"], e["seconds"])
    return engines.get("ort", "-"), engines.get("tract", "-")


def main():
    models, logs = sys.argv[1], sys.argv[2]
    torch_log = os.path.join(logs, "torch.log")
    # Each `<name>.verify.json`, read once.
    reports = {os.path.basename(v)[: -len(".verify.json")]: json.load(open(v))
               for v in sorted(glob.glob(os.path.join(models, "*.verify.json")))}
    rows = []
    print("| run | device | train images | epoch s | images/s | before epoch 1 s | test acc | ort: top-1 agreement with Burn / max prob diff (provider, s) | tract: the same |")
    print("|---|---|---|---|---|---|---|---|---|")
    for h in sorted(glob.glob(os.path.join(models, "*.history.json"))):
        name = os.path.basename(h)[: -len(".history.json")]
        hist = json.load(open(h))
        epoch = hist["epochs"][-1]
        ort, tract = engine_cells(reports.get(name))
        rows.append((name, epoch["val_accuracy"]))
        print("| %s | %s | %d | %.1f | %.0f | %.1f | %.2f %% | %s | %s |" % (
            name, hist["device"], hist["train_images"], epoch["seconds"],
            epoch["images_per_second"], hist.get("setup_seconds", 0.0),
            100 * epoch["val_accuracy"], ort, tract))
    peer = last_json_line(torch_log)
    if peer:
        print("| pytorch cnn | %s (%s) | - | %.1f | %.0f | - | %.2f %% | - | - |" % (
            peer["peer"], peer["device_name"], peer["seconds"], peer["images_per_second"],
            100 * peer["test_accuracy"]))
    variants = [r for r in reports.values() if r.get("variant")]
    if variants:
        print("\n| variant | size MB | accuracy (first engine that ran) | ort: agreement with Burn fp32 / max prob diff (provider, s) | tract: the same |")
        print("|---|---|---|---|---|")
        for r in variants:
            ran = [e for e in r["engines"] if e.get("accuracy") is not None]
            size = os.path.getsize(r["model"]) / 1e6 if os.path.exists(r["model"]) else float("nan")
            print("| %s | %.1f | %s | %s | %s |" % (
                os.path.basename(r["model"]), size,
                "%.2f %%" % (100 * ran[0]["accuracy"]) if ran else "-", *engine_cells(r)))
    passed_over = []
    for name, r in reports.items():
        for e in r["engines"]:
            if e.get("passed_over"):
                passed_over.append("%s: %s ran on %s; passed over: %s" % (
                    name, e["engine"], e["provider"],
                    e["passed_over"].replace("\n", "; ")))
    if passed_over:
        print()
        print("\n".join(passed_over))
    bench = []
    for log in sorted(glob.glob(os.path.join(logs, "bench-*.log"))):
        label = os.path.basename(log)[len("bench-"): -len(".log")]
        for line in open(log):
            if line.startswith("{"):
                bench.append((label, json.loads(line)))
    if bench:
        print("\n| VGG16 on ONNX Runtime | provider that ran | batch | median ms | images/s |")
        print("|---|---|---|---|---|")
        for label, b in bench:
            print("| %s | %s | %d | %.2f | %.0f |" % (
                label, b["provider"], b["batch"], 1000 * b["median_seconds"], b["images_per_second"]))
    acc = dict(rows)
    pair = [os.path.join(models, "cnn-10k-%s.burn.json" % d) for d in ("cuda", "cpu")]
    if "cnn-10k-cuda" in acc and "cnn-10k-cpu" in acc:
        print("\nCNN on the same 10,000 images with the same seed, one epoch: test accuracy CUDA minus "
              "CPU %+.2f points" % (100 * (acc["cnn-10k-cuda"] - acc["cnn-10k-cpu"])), end="")
        if all(os.path.exists(p) for p in pair):
            a, b = (top1(p) for p in pair)
            if len(a) != len(b):
                print("; their test sets differ (%d and %d images)" % (len(a), len(b)))
            else:
                same = sum(x == y for x, y in zip(a, b))
                print("; the two models give the same top-1 on %d of %d test images (%.2f %%)"
                      % (same, len(a), 100 * same / max(len(a), 1)))
        else:
            print()


def top1(reference):
    """Top-1 classes of a `<model>.burn.json` (Burn's own test logits)."""
    r = json.load(open(reference))
    k = r["classes"]
    logits = r["logits"]
    return [max(range(k), key=lambda j: logits[i * k + j]) for i in range(len(logits) // k)]

if __name__ == "__main__":
    main()
