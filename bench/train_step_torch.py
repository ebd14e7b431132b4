"""PyTorch twin of bench/train-step.ts: one LSQ QAT training step of CIFAR ResNet-20, images per second.

The model and step are those of mpq (src/train/models.ts, src/quant/lsq.ts, src/train/loops.ts):
ResNet-20 with option-A shortcuts (stride-2 subsampling, zero channel padding), every conv and the
fc layer quantizing its weights (signed, one LSQ step per tensor) and its input (signed 8 bits for
the image, unsigned after ReLU); first conv and fc at 8/8 bits, the rest at BITS/BITS. LSQ: step
clamped to [1e-5, 1], gradient scaled by 1/sqrt(numel * hi), straight-through round, step sizes
initialised from the first batch (weights max(|m - 3s|, |m + 3s|) / 2^(b-1), activations
2 mean|x| / sqrt(hi)). Loss: cross-entropy with label smoothing 0.1; SGD momentum 0.9, weight decay
1e-4 on conv/fc weights only. BITS 32: the full-precision step (no quantizers).

Prints one JSON line: {"img_per_s": ..., "median_ms": ..., "peak_rss_mb": ..., "threads": ...}.
Usage: python3 train_step_torch.py BATCH STEPS WARMUP THREADS [BITS]
"""
import json
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

STEP_MIN, STEP_MAX = 1e-5, 1.0
FIXED_BITS = 8


def quant_range(bits, signed):
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)


def grad_scale(x, scale):
    return (x - x * scale).detach() + x * scale


def round_ste(x):
    return (x.round() - x).detach() + x


class Lsq(nn.Module):
    """LSQ fake quantizer with one learned step per tensor (src/quant/lsq.ts)."""

    def __init__(self, bits, signed, init):
        super().__init__()
        self.bits, self.init = bits, init
        self.lo, self.hi = quant_range(bits, signed)
        self.step = nn.Parameter(torch.ones(()))
        self.register_buffer("initialised", torch.zeros(()))

    def forward(self, x):
        if self.bits >= 32:
            return x
        if self.training and self.initialised.item() == 0:
            with torch.no_grad():
                if self.init == "activation":
                    self.step.copy_(2 * x.abs().mean() / math.sqrt(self.hi))
                else:
                    m, s = x.mean(), x.std()
                    self.step.copy_(torch.maximum((m - 3 * s).abs(), (m + 3 * s).abs()) / 2 ** (self.bits - 1))
                self.initialised.fill_(1)
        s = grad_scale(self.step.clamp(STEP_MIN, STEP_MAX), 1 / math.sqrt(x.numel() * self.hi))
        return round_ste((x / s).clamp(self.lo, self.hi)) * s


class QuantConv(nn.Conv2d):
    def __init__(self, cin, cout, stride, bits, signed_input):
        super().__init__(cin, cout, 3, stride, 1, bias=False)
        self.quan_w = Lsq(bits, True, "weight")
        self.quan_a = Lsq(bits, signed_input, "activation")

    def forward(self, x):
        return self._conv_forward(self.quan_a(x), self.quan_w(self.weight), None)


class QuantLinear(nn.Linear):
    def __init__(self, fin, fout, bits):
        super().__init__(fin, fout)
        self.quan_w = Lsq(bits, True, "weight")
        self.quan_a = Lsq(bits, False, "activation")

    def forward(self, x):
        return F.linear(self.quan_a(x), self.quan_w(self.weight), self.bias)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, bits):
        super().__init__()
        self.conv1 = QuantConv(cin, cout, stride, bits, False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = QuantConv(cout, cout, 1, bits, False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x
        if self.stride != 1 or self.extra != 0:
            # option A: subsample, zero-pad the new channels (half before, half after)
            shortcut = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return F.relu(out + shortcut)


class ResNet20(nn.Module):
    def __init__(self, bits, classes=10):
        super().__init__()
        self.conv1 = QuantConv(3, 16, 1, FIXED_BITS if bits < 32 else 32, True)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for stage, cout in enumerate((16, 32, 64)):
            for i in range(3):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1, bits))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = QuantLinear(64, classes, FIXED_BITS if bits < 32 else 32)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def main():
    batch, steps, warmup, threads = (int(a) for a in sys.argv[1:5])
    bits = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = ResNet20(bits).train()
    weights = [m.weight for m in model.modules() if isinstance(m, (QuantConv, QuantLinear))]
    others = [p for p in model.parameters() if all(p is not w for w in weights)]
    optimizer = torch.optim.SGD([{"params": weights, "weight_decay": 1e-4}, {"params": others, "weight_decay": 0}], lr=0.01, momentum=0.9)
    images = torch.randn(batch, 3, 32, 32)
    labels = torch.randint(0, 10, (batch,))
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels, label_smoothing=0.1).backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(json.dumps({
        "img_per_s": batch / median,
        "median_ms": median * 1000,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
