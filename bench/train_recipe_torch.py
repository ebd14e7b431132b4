"""PyTorch twin of mpq's full-precision training recipe on mnist-cnn (bench/recipe.ts drives it).

The network is mpq's mnist-cnn (src/train/models.ts): conv1 16 (3x3 s1 p1), conv2 32 (s2), conv3 64,
conv4 64 (s2), conv5 128, each without bias and followed by batch norm (momentum 0.1, eps 1e-5) and
ReLU, global average pool, fc 10. The recipe is mpq's `train` stage (src/train/loops.ts): SGD
momentum 0.9, weight decay on conv/fc weights only, cross-entropy with label smoothing 0.1, a cosine
learning rate decayed per step from the base rate to 0 over all the run's steps, batches in a
seeded shuffle (last batch partial), every training image shifted by a uniform -2..2 pixels each way
with black borders. The digits are mpq's own split, read from the file the driver wrote.

With --draws, the twin takes mpq's own random draws for the run (JSON from the driver): the
initial weights, each epoch's sample order and each image's shift, so that mpq and the twin differ
only in their arithmetic. Without, it draws its own from SEED with PyTorch's generators.

Ablation switches, to find where mpq and PyTorch part (without --draws):
  init      torch (PyTorch's defaults: U(+-1/sqrt(fan_in)) weights and fc bias)
            | he-normal (N(0, 2/fan_in) weights, zero fc bias: what mpq did before)
  schedule  step (cosine per step, as mpq) | epoch (CosineAnnealingLR stepped once per epoch)

Usage: python3 train_recipe_torch.py DATA EPOCHS SEED [--draws FILE] [--init torch|he-normal]
       [--schedule step|epoch] [--lr 0.05] [--batch 64] [--threads 1]
DATA: int32 train count, int32 test count, then train images (float32 NHWC 28x28x1, normalised),
train labels (int32), test images, test labels.
Prints one JSON line: {"epochs": ..., "seed": ..., "test_top1": [per epoch, 0-1], "seconds": ...}.
"""
import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SHIFT = 2
SPECS = [(1, 16, 1), (16, 32, 2), (32, 64, 1), (64, 64, 2), (64, 128, 1)]


class MnistCnn(nn.Module):
    def __init__(self, init):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, 3, stride, 1, bias=False) for cin, cout, stride in SPECS)
        self.bns = nn.ModuleList(nn.BatchNorm2d(cout) for _, cout, _ in SPECS)
        self.fc = nn.Linear(128, 10)
        if init == "he-normal":
            for layer in [*self.convs, self.fc]:
                fan_in = layer.weight[0].numel()
                nn.init.normal_(layer.weight, 0, math.sqrt(2 / fan_in))
            nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        for conv, bn in zip(self.convs, self.bns):
            x = F.relu(bn(conv(x)))
        return self.fc(x.mean((2, 3)))


def read_data(path):
    raw = open(path, "rb").read()
    n_train, n_test = np.frombuffer(raw, np.int32, 2)
    at = 8

    def take(count, dtype):
        nonlocal at
        values = np.frombuffer(raw, dtype, count, at)
        at += values.nbytes
        return values

    def images(n):
        return torch.from_numpy(take(n * 784, np.float32).reshape(n, 28, 28, 1).transpose(0, 3, 1, 2).copy())

    train_x = images(n_train)
    train_y = torch.from_numpy(take(n_train, np.int32).astype(np.int64))
    test_x = images(n_test)
    test_y = torch.from_numpy(take(n_test, np.int32).astype(np.int64))
    return train_x, train_y, test_x, test_y


def shifted(x, shifts, black):
    """Image i moved down by shifts[i][0] and right by shifts[i][1] pixels, black where nothing moved in."""
    _, _, h, w = x.shape
    padded = F.pad(x, (SHIFT, SHIFT, SHIFT, SHIFT), value=black)
    return torch.stack([padded[i, :, SHIFT - dy:SHIFT - dy + h, SHIFT - dx:SHIFT - dx + w] for i, (dy, dx) in enumerate(shifts)])


class OwnDraws:
    """The twin's own draws, from PyTorch's generators."""

    def __init__(self, seed):
        self.generator = torch.Generator().manual_seed(seed)

    def order(self, epoch, count):
        return torch.randperm(count, generator=self.generator)

    def shifts(self, epoch, start, n):
        return torch.randint(-SHIFT, SHIFT + 1, (n, 2), generator=self.generator).tolist()


class MpqDraws:
    """mpq's draws for the run: {"init": {name: {"shape", "values"}}, "orders": [[...]], "shifts": [[dy, dx, ...]]}."""

    def __init__(self, path):
        with open(path) as f:
            self.draws = json.load(f)

    def load_init(self, model):
        init = self.draws["init"]

        def tensor(name, layout):
            d = init[name]
            return torch.tensor(d["values"], dtype=torch.float32).reshape(d["shape"]).permute(*layout)

        with torch.no_grad():
            for i, conv in enumerate(model.convs):
                conv.weight.copy_(tensor(f"conv{i + 1}.weight", (3, 2, 0, 1)))  # [kh, kw, in, out] -> [out, in, kh, kw]
            model.fc.weight.copy_(tensor("fc.weight", (1, 0)))  # [in, out] -> [out, in]
            model.fc.bias.copy_(tensor("fc.bias", (0,)))

    def order(self, epoch, count):
        return torch.tensor(self.draws["orders"][epoch], dtype=torch.int64)

    def shifts(self, epoch, start, n):
        flat = self.draws["shifts"][epoch][2 * start:2 * (start + n)]
        return list(zip(flat[0::2], flat[1::2]))


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        correct = sum((model(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum().item() for i in range(0, len(x), 500))
    model.train()
    return correct / len(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("epochs", type=int)
    parser.add_argument("seed", type=int)
    parser.add_argument("--draws")
    parser.add_argument("--init", choices=["torch", "he-normal"], default="torch")
    parser.add_argument("--schedule", choices=["step", "epoch"], default="step")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_x, train_y, test_x, test_y = read_data(args.data)
    black = float(train_x.min())  # the normalised value of a black pixel
    model = MnistCnn(args.init)
    draws = MpqDraws(args.draws) if args.draws else OwnDraws(args.seed)
    if args.draws:
        draws.load_init(model)
    weights = [m.weight for m in [*model.convs, model.fc]]
    others = [p for p in model.parameters() if all(p is not w for w in weights)]
    optimizer = torch.optim.SGD([{"params": weights, "weight_decay": 5e-4}, {"params": others, "weight_decay": 0}],
                                lr=args.lr, momentum=0.9)
    steps_per_epoch = math.ceil(len(train_x) / args.batch)
    total = steps_per_epoch * args.epochs
    if args.schedule == "step":
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total)))
    else:
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs)
    started = time.perf_counter()
    top1 = []
    for epoch in range(args.epochs):
        order = draws.order(epoch, len(train_x))
        for start in range(0, len(train_x), args.batch):
            batch = order[start:start + args.batch]
            optimizer.zero_grad()
            logits = model(shifted(train_x[batch], draws.shifts(epoch, start, len(batch)), black))
            F.cross_entropy(logits, train_y[batch], label_smoothing=0.1).backward()
            optimizer.step()
            if args.schedule == "step":
                schedule.step()
        if args.schedule == "epoch":
            schedule.step()
        top1.append(evaluate(model, test_x, test_y))
    print(json.dumps({"epochs": args.epochs, "seed": args.seed, "draws": "mpq" if args.draws else "own",
                      "init": "mpq" if args.draws else args.init, "schedule": args.schedule,
                      "test_top1": top1, "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
