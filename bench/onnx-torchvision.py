#!/usr/bin/python3
"""Exports torchvision's resnet18 and mobilenet_v2 (random weights, seeded; nothing downloaded) to ONNX
files in a temporary directory, for the bench step that imports them and compares their layer tables
with mpq's zoo (`resnet18`, `mobilenetv2`) and their logits with onnxruntime's. The files are large
(45 MB and 14 MB) and never committed.

Prints one JSON line: {"dir": ..., "opset": ..., "torch": ..., "models": {"resnet18": PATH, ...}}.
Exits 3 when torch or torchvision is missing, so the bench can skip the step.

Usage: /usr/bin/python3 bench/onnx-torchvision.py [--out DIR] [--opset N] [--keep-bn]
  --out DIR    write there instead of a new temporary directory
  --opset N    ONNX opset (default 13; torch 1.13 writes 7..17)
  --keep-bn    keep BatchNormalization nodes (TrainingMode.PRESERVE) instead of folding them into the convs
"""
import argparse
import json
import os
import sys
import tempfile

try:
    import torch
    import torchvision
except ImportError as err:
    print(f'onnx-torchvision: {err}; install python3-torch python3-torchvision', file=sys.stderr)
    sys.exit(3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', help='output directory (default: a new temporary directory)')
    parser.add_argument('--opset', type=int, default=13)
    parser.add_argument('--keep-bn', action='store_true')
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix='mpq-onnx-torchvision-')
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    models = {}
    for name in ('resnet18', 'mobilenet_v2'):
        model = getattr(torchvision.models, name)(weights=None).eval()
        path = os.path.join(out, name + '.onnx')
        extra = dict(training=torch.onnx.TrainingMode.PRESERVE) if args.keep_bn else {}
        torch.onnx.export(model, torch.zeros(1, 3, 224, 224), path, opset_version=args.opset, input_names=['input'],
                          output_names=['logits'], dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}}, **extra)
        models[name] = path
    print(json.dumps({'dir': out, 'opset': args.opset, 'batch_norm': 'kept' if args.keep_bn else 'folded',
                      'torch': torch.__version__, 'torchvision': torchvision.__version__, 'models': models}))


if __name__ == '__main__':
    main()
