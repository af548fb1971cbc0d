"""One markdown table from a GPU check's models folder and the PyTorch peer's output.

    python3 tests/gpu/table.py MODELS_DIR TORCH_LOG
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


def main():
    models, torch_log = sys.argv[1], sys.argv[2]
    rows = []
    print("| run | device | train images | epoch s | images/s | before epoch 1 s | test acc | ort agree / max dp | tract agree / max dp |")
    print("|---|---|---|---|---|---|---|---|---|")
    for h in sorted(glob.glob(os.path.join(models, "*.history.json"))):
        name = os.path.basename(h)[: -len(".history.json")]
        hist = json.load(open(h))
        epoch = hist["epochs"][-1]
        engines = {}
        v = os.path.join(models, name + ".verify.json")
        if os.path.exists(v):
            for e in json.load(open(v))["engines"]:
                if e.get("error"):
                    engines[e["engine"]] = "not run"
                else:
                    engines[e["engine"]] = "%.2f %% / %.1e (%s)" % (
                        100 * e["top1_agreement"], e["max_abs_prob_diff"], e["provider"])
        rows.append((name, epoch["val_accuracy"]))
        print("| %s | %s | %d | %.1f | %.0f | %.1f | %.2f %% | %s | %s |" % (
            name, hist["device"], hist["train_images"], epoch["seconds"],
            epoch["images_per_second"], hist.get("setup_seconds", 0.0),
            100 * epoch["val_accuracy"], engines.get("ort", "-"), engines.get("tract", "-")))
    peer = last_json_line(torch_log)
    if peer:
        print("| pytorch cnn | %s (%s) | - | %.1f | %.0f | - | %.2f %% | - | - |" % (
            peer["peer"], peer["device_name"], peer["seconds"], peer["images_per_second"],
            100 * peer["test_accuracy"]))
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
