#!/usr/bin/env python3
"""Train an mho architecture with PyTorch on the same data as `mho train`, for comparison.

    /opt/mho-venv/bin/python scripts/train_torch.py --arch ARCH.json --dataset fashion-mnist \\
        --epochs 5 --batch-size 64 --lr 1e-3 --optimizer adam --threads 2 [--out M.safetensors]

ARCH.json is an mho architecture ({"format": "mho.sequential.v1", "input_shape": ..., "layers":
...}, as in `mho train --arch ARCH.json`); an mho .safetensors file works too (its architecture,
freshly initialised). PyTorch's default initialisation (torch.manual_seed(--seed)), cross-entropy
on the last layer's output (NLL if it ends in LogSoftmax, log+NLL if it ends in Softmax),
reshuffled minibatches every epoch, Adam (betas 0.9/0.999, eps 1e-8) or SGD with --momentum.

Data (the same as mho's):
* fashion-mnist: the IDX .gz files of Debian's dataset-fashion-mnist
  (/usr/share/datasets/fashion-mnist, or --data DIR): 60000 training, 10000 test images,
  pixels / 255.
* digits: scikit-learn's digits.csv.gz (the copy in data/ of this repo), pixels / 16, split by
  `digits_split()` below, which reproduces mho's split (src/data/digits.rs).

Prints a line per epoch (loss, held-out accuracy), then the training wall time (excluding data
loading and the per-epoch evaluation) and the final test accuracy, and a JSON summary line.
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mho_format import build_sequential, export_sequential  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_DIR = "/usr/share/datasets/fashion-mnist"


# ---------------------------------------------------------------------------------------------
# >>> THE DIGITS SPLIT: must stay identical to mho's (src/data/digits.rs) <<<
# mho shuffles the 1797 image indices with its SplitMix64 generator (src/nn/rng.rs:
# Rng::new(SPLIT_SEED, 0).shuffle, Fisher-Yates from the end, `below` without modulo bias)
# and holds out the last 360 (20%). If mho's split changes, change this function with it.
# ---------------------------------------------------------------------------------------------
DIGITS_SPLIT_SEED = 0x00D16175
DIGITS_HELD_OUT = 360
M64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed, stream=0):
        self.state = (seed ^ (stream * 0xD1B54A32D192ED03)) & M64
        self.next_u64()

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def below(self, n):
        zone = M64 - M64 % n
        while True:
            v = self.next_u64()
            if v < zone:
                return v % n

    def shuffle(self, xs):
        for i in range(len(xs) - 1, 0, -1):
            j = self.below(i + 1)
            xs[i], xs[j] = xs[j], xs[i]


def digits_split(n_images):
    """(train indices, held-out indices) into the rows of digits.csv.gz, as mho splits them."""
    order = list(range(n_images))
    SplitMix64(DIGITS_SPLIT_SEED, 0).shuffle(order)
    n_train = n_images - DIGITS_HELD_OUT
    return order[:n_train], order[n_train:]
# ---------------------------------------------------------------------------------------------


def load_digits():
    path = os.path.join(REPO, "data", "digits.csv.gz")
    if not os.path.exists(path):  # fall back to scikit-learn's copy
        import sklearn
        path = os.path.join(os.path.dirname(sklearn.__file__), "datasets", "data", "digits.csv.gz")
    rows = np.loadtxt(gzip.open(path, "rt"), delimiter=",")
    x = (rows[:, :64] / 16).astype(np.float32).reshape(-1, 1, 8, 8)
    y = rows[:, 64].astype(np.int64)
    tr, te = digits_split(len(x))
    return x[tr], y[tr], x[te], y[te]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    assert data[2] == 0x08, f"{path}: not unsigned bytes"
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion(d):
    def part(p):
        x = read_idx(os.path.join(d, f"{p}-images-idx3-ubyte.gz")).astype(np.float32) / 255
        y = read_idx(os.path.join(d, f"{p}-labels-idx1-ubyte.gz")).astype(np.int64)
        return x.reshape(-1, 1, 28, 28), y
    if not os.path.exists(os.path.join(d, "train-images-idx3-ubyte.gz")):
        sys.exit(f"error: Fashion-MNIST not found in {d}: apt-get install dataset-fashion-mnist, or --data DIR")
    return (*part("train"), *part("t10k"))


def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", required=True, help="mho architecture .json (or an mho .safetensors)")
    ap.add_argument("--dataset", required=True, choices=["fashion-mnist", "digits"])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    ap.add_argument("--momentum", type=float, default=0.9, help="for sgd")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=FASHION_DIR, help="Fashion-MNIST directory")
    ap.add_argument("--out", help="save the trained model in mho's format")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    if a.arch.endswith(".safetensors"):
        from safetensors import safe_open
        with safe_open(a.arch, "pt") as f:
            arch = json.loads(f.metadata()["architecture"])
    else:
        arch = json.load(open(a.arch))
    model = build_sequential(arch)

    t0 = time.perf_counter()
    xtr, ytr, xte, yte = load_digits() if a.dataset == "digits" else load_fashion(a.data)
    xtr, ytr, xte, yte = map(torch.from_numpy, (xtr, ytr, xte, yte))
    shape = list(arch["input_shape"])
    xtr, xte = xtr.reshape(-1, *shape), xte.reshape(-1, *shape)
    print(f"{a.dataset}: {len(xtr)} training, {len(xte)} held-out images {shape} "
          f"(loaded in {time.perf_counter() - t0:.2f} s); {sum(p.numel() for p in model.parameters())} parameters")

    last = arch["layers"][-1]["type"]
    nll = nn.NLLLoss()
    if last == "LogSoftmax":
        loss_fn = nll
    elif last == "Softmax":
        loss_fn = lambda out, y: nll(torch.log(out.clamp_min(1e-30)), y)  # noqa: E731
    else:
        loss_fn = nn.CrossEntropyLoss()
    if a.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)

    g = torch.Generator().manual_seed(a.seed)
    train_time, acc = 0.0, 0.0
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        total, n = 0.0, 0
        for i in range(0, len(xtr), a.batch_size):
            idx = perm[i:i + a.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            n += len(idx)
        dt = time.perf_counter() - t0
        train_time += dt
        acc = accuracy(model, xte, yte)
        print(f"epoch {epoch}/{a.epochs}: loss {total / n:.4f}, held-out accuracy {100 * acc:.2f}% ({dt:.2f} s)")
    print(f"training wall time {train_time:.2f} s ({a.threads} threads, torch {torch.__version__}); "
          f"test accuracy {100 * acc:.2f}% on {len(xte)} images")
    if a.out:
        export_sequential(model.eval(), shape, a.out)
    print(json.dumps({"dataset": a.dataset, "epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr,
                      "optimizer": a.optimizer, "threads": a.threads, "seed": a.seed,
                      "train_seconds": round(train_time, 3), "test_accuracy": acc, "n_test": len(xte)}))


if __name__ == "__main__":
    main()
