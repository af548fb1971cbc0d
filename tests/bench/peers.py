"""The Python peers of the benchmarks, written the way a user of each tool would write them.

Each subcommand prints one JSON object: the measurement (peak memory is measured from outside).

  peers.py infer MODEL.onnx --batch B --runs N          onnxruntime's Python API
  peers.py classify MODEL.onnx FOLDER --batch B         PIL + onnxruntime over a folder
  peers.py train-cnn DATA_DIR --epochs E                the article's Keras CNN
  peers.py train-vgg16 DATA_DIR VGG16.onnx --epochs E   the article's Keras VGG16 transfer
  peers.py quantize MODEL.onnx OUT.onnx --method static|dynamic --calibration DATA_DIR --images N
                                                        onnxruntime's own quantizer
"""
import argparse
import json
import os
import sys
import time

import numpy as np


def bench_input(n):
    """The same fixed pattern as `runtime bench` feeds."""
    i = np.arange(n, dtype=np.uint64)
    return ((i * 7919) % 2000).astype(np.float32) / 1000.0 - 1.0


def infer(args):
    import onnxruntime as ort

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    shape = [args.batch] + [d if isinstance(d, int) else None for d in inp.shape[1:]]
    if None in shape:
        sys.exit(f"{args.model}: input {inp.name} has no fixed image size: {inp.shape}")
    x = bench_input(int(np.prod(shape))).reshape(shape)
    session.run(None, {inp.name: x})
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        session.run(None, {inp.name: x})
        times.append(time.perf_counter() - start)
    median = sorted(times)[len(times) // 2]
    return {"batch": args.batch, "median_seconds": median, "images_per_second": args.batch / median}


def classify(args):
    import onnxruntime as ort
    from PIL import Image

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    inp = session.get_inputs()[0]
    height, width = (int(v) for v in meta["input_size"].split("x"))
    scale = float(meta["scale"])
    mean = np.array(meta["mean"].split(","), dtype=np.float32).reshape(3, 1, 1)
    std = np.array(meta["std"].split(","), dtype=np.float32).reshape(3, 1, 1)
    bgr = meta["channel_order"].upper() == "BGR"
    classes = json.loads(meta["classes"]) if "classes" in meta else None

    paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(args.folder) for f in fs)
    rows, failed = [], 0

    def run(batch_paths, arrays):
        probs = session.run(None, {inp.name: np.stack(arrays)})[0]
        for p, row in zip(batch_paths, probs):
            k = int(row.argmax())
            rows.append(f"{p},{classes[k] if classes else k},{row[k]:.6f}")

    start = time.perf_counter()
    batch_paths, arrays = [], []
    for path in paths:
        try:
            img = Image.open(path).convert("RGB")
            # The largest centred crop of the model's aspect ratio, then resized (as the runtime
            # does, and as torchvision's Resize + CenterCrop would).
            w, h = img.size
            cw, ch = (max(1, h * width // height), h) if w * height > h * width else (w, max(1, w * height // width))
            left, top = (w - cw) // 2, (h - ch) // 2
            img = img.crop((left, top, left + cw, top + ch)).resize((width, height), Image.BILINEAR)
        except Exception as e:  # a user's script reports the file and goes on
            failed += 1
            print(f"{path}: {e}", file=sys.stderr)
            continue
        x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)
        if bgr:
            x = x[::-1]
        arrays.append((x * scale - mean) / std)
        batch_paths.append(path)
        if len(arrays) == args.batch:
            run(batch_paths, arrays)
            batch_paths, arrays = [], []
    if arrays:
        run(batch_paths, arrays)
    seconds = time.perf_counter() - start
    with open(args.output, "w") as f:
        f.write("\n".join(rows) + "\n")
    return {"files": len(paths), "failed": failed, "seconds": seconds, "files_per_second": len(paths) / seconds}


def read_cifar(folder, split, limit):
    """CIFAR-10 binary records: 1 label byte, then 3072 bytes of R, G, B planes."""
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    records = []
    for name in names:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            records.append(np.fromfile(path, dtype=np.uint8).reshape(-1, 3073))
    data = np.concatenate(records)[:limit]
    images = data[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, data[:, 0].astype(np.int64)


def model_input(model_path, images):
    """`[N,H,W,3]` uint8 images as the model's metadata says it takes them."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(model_path, load_external_data=False).metadata_props}
    x = images.astype(np.float32)
    if meta.get("channel_order") == "BGR":
        x = x[..., ::-1]
    mean = np.array([float(v) for v in meta["mean"].split(",")], dtype=np.float32)
    std = np.array([float(v) for v in meta["std"].split(",")], dtype=np.float32)
    x = (x * np.float32(float(meta["scale"])) - mean) / std
    h, w = map(int, meta["input_size"].split("x"))
    if x.shape[1:3] != (h, w):
        from PIL import Image

        x = np.stack([np.asarray(Image.fromarray(im).resize((w, h), Image.BILINEAR), dtype=np.float32)
                      for im in images])
        x = (x * np.float32(float(meta["scale"])) - mean) / std
    if meta["input_layout"] == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.float32)


def quantize(args):
    """onnxruntime.quantization as its documentation shows it: quantize_static (QDQ, per-channel
    int8 weights, uint8 activations, MinMax calibration) or quantize_dynamic (int8 weights)."""
    from onnxruntime import quantization as q

    start = time.perf_counter()
    if args.method == "dynamic":
        q.quantize_dynamic(args.model, args.out, weight_type=q.QuantType.QInt8, per_channel=True)
    else:
        images, _ = read_cifar(args.calibration, "train", None)
        # The same images as `runtime quantize`: spread evenly over the training set.
        n = min(args.images, len(images))
        picked = images[[k * len(images) // n for k in range(n)]]
        x = model_input(args.model, picked)
        import onnxruntime as ort

        name = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"]).get_inputs()[0].name

        class Reader(q.CalibrationDataReader):
            def __init__(self):
                self.batches = iter([{name: x[i:i + 32]} for i in range(0, len(x), 32)])

            def get_next(self):
                return next(self.batches, None)

        pre = args.out + ".pre.onnx"
        q.quant_pre_process(args.model, pre, skip_symbolic_shape=True)
        q.quantize_static(pre, args.out, Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                          activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8)
        os.remove(pre)
    # The file keeps the float model's metadata (quantize_* drops it), so that runtimes read it.
    import onnx

    src, out = onnx.load(args.model), onnx.load(args.out)
    del out.metadata_props[:]
    out.metadata_props.extend(src.metadata_props)
    onnx.save(out, args.out)
    return {"seconds": time.perf_counter() - start, "bytes": os.path.getsize(args.out)}


def epoch_timer():
    """A Keras callback recording each epoch's seconds (training only, no evaluation)."""
    import keras

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    return Timer()


def fit_report(model, x, y, xt, yt, args):
    timer = epoch_timer()
    model.fit(x, y, batch_size=args.batch, epochs=args.epochs, shuffle=True, verbose=0, callbacks=[timer])
    accuracy = float(model.evaluate(xt, yt, batch_size=256, verbose=0)[1])
    last = timer.seconds[-1]
    return {
        "images": len(x),
        "epoch_seconds": timer.seconds,
        "images_per_second": len(x) / last,
        "test_accuracy": accuracy,
    }


def train_cnn(args):
    import keras
    from keras import layers

    keras.utils.set_random_seed(args.seed)
    x, y = read_cifar(args.data, "train", args.train_limit)
    xt, yt = read_cifar(args.data, "test", args.test_limit)
    x, xt = x.astype("float32") / 255.0, xt.astype("float32") / 255.0
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Dropout(0.25),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(512, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-4), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return fit_report(model, x, y, xt, yt, args)


def vgg16_weights(path):
    """The 13 convolutions' weights of a VGG16 ONNX file, in order, as Keras kernels."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(path).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    return [(init[c.input[1]].transpose(2, 3, 1, 0), init[c.input[2]]) for c in convs]


def train_vgg16(args):
    import keras
    from keras import layers

    keras.utils.set_random_seed(args.seed)
    x, y = read_cifar(args.data, "train", args.train_limit)
    xt, yt = read_cifar(args.data, "test", args.test_limit)
    prep = keras.applications.vgg16.preprocess_input
    x, xt = prep(x.astype("float32")), prep(xt.astype("float32"))
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    convs = [l for l in base.layers if isinstance(l, layers.Conv2D)]
    for layer, (kernel, bias) in zip(convs, vgg16_weights(args.vgg16)):
        layer.set_weights([kernel, bias])
    for layer in base.layers[:15]:  # the article: frozen through block4_pool
        layer.trainable = False
    model = keras.Sequential([
        base,
        layers.Flatten(),
        layers.Dense(256, activation="sigmoid"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-4, momentum=0.9), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return fit_report(model, x, y, xt, yt, args)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("infer")
    s.add_argument("model")
    s.add_argument("--batch", type=int, default=1)
    s.add_argument("--runs", type=int, default=10)
    s = sub.add_parser("classify")
    s.add_argument("model")
    s.add_argument("folder")
    s.add_argument("--batch", type=int, default=32)
    s.add_argument("--output", default=os.devnull)
    for name in ("train-cnn", "train-vgg16"):
        s = sub.add_parser(name)
        s.add_argument("data")
        if name == "train-vgg16":
            s.add_argument("vgg16")
        s.add_argument("--epochs", type=int, default=2)
        s.add_argument("--batch", type=int, default=100 if name == "train-cnn" else 32)
        s.add_argument("--train-limit", type=int, default=None)
        s.add_argument("--test-limit", type=int, default=None)
        s.add_argument("--seed", type=int, default=7)
    s = sub.add_parser("quantize")
    s.add_argument("model")
    s.add_argument("out")
    s.add_argument("--method", choices=["static", "dynamic"], default="static")
    s.add_argument("--calibration", help="CIFAR-10 binary folder (static)")
    s.add_argument("--images", type=int, default=200)
    args = p.parse_args()
    run = {"infer": infer, "classify": classify, "train-cnn": train_cnn, "train-vgg16": train_vgg16,
           "quantize": quantize}
    print(json.dumps(run[args.command](args)))


if __name__ == "__main__":
    main()
