"""The article's CNN in PyTorch, trained the way the trainer trains it, as the GPU peer.

Reads the CIFAR-10 binary format (data_batch_*.bin, test_batch.bin), trains one or more epochs
of Conv32-Conv32-Pool-Conv64-Conv64-Pool-Dense512-Dense10 (dropout .25/.25/.5) with RMSprop,
and prints one JSON line: images/s of the training epochs, seconds, test accuracy.

    python3 tests/gpu/torch_cnn.py DATA_DIR [--epochs 1] [--batch-size 100] [--device cuda]
"""

import argparse
import glob
import json
import os
import time

import numpy as np
import torch
from torch import nn


def read_batches(files):
    raw = np.concatenate([np.fromfile(f, dtype=np.uint8) for f in files])
    records = raw.reshape(-1, 1 + 3072)
    labels = records[:, 0].astype(np.int64)
    images = records[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    return torch.from_numpy(images), torch.from_numpy(labels)


class Cnn(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding="same"), nn.ReLU(),
            nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
            nn.Conv2d(32, 64, 3, padding="same"), nn.ReLU(),
            nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 6 * 6, 512), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(512, classes),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.head(self.features(x))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--device", default="cuda")
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    train_x, train_y = read_batches(sorted(glob.glob(os.path.join(a.data, "data_batch_*.bin"))))
    test_x, test_y = read_batches([os.path.join(a.data, "test_batch.bin")])
    # The whole set on the device: data loading never waits.
    train_x, train_y = train_x.to(dev), train_y.to(dev)
    test_x, test_y = test_x.to(dev), test_y.to(dev)
    model = Cnn().to(dev)
    optim = torch.optim.RMSprop(model.parameters(), lr=a.lr, alpha=0.9, eps=3e-4)
    loss_fn = nn.CrossEntropyLoss()
    n = train_x.shape[0]
    seen, start = 0, time.perf_counter()
    for _ in range(a.epochs):
        model.train()
        order = torch.randperm(n, device=dev)
        for i in range(0, n, a.batch_size):
            idx = order[i : i + a.batch_size]
            optim.zero_grad(set_to_none=True)
            loss = loss_fn(model(train_x[idx]), train_y[idx])
            loss.backward()
            optim.step()
            seen += idx.shape[0]
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, test_x.shape[0], 1000):
            correct += (model(test_x[i : i + 1000]).argmax(1) == test_y[i : i + 1000]).sum().item()
    print(json.dumps({
        "peer": f"pytorch {torch.__version__} ({a.device})",
        "images_per_second": seen / seconds,
        "seconds": seconds,
        "test_accuracy": correct / test_x.shape[0],
        "device_name": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
    }))


if __name__ == "__main__":
    main()
