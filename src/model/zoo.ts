/**
 * The model zoo as graphs (src/model/graph.ts): a few standard networks written as in their
 * PyTorch definitions, with torchvision / LIMPQ module names. Their layer tables (every conv /
 * linear layer with the names, shapes, weight counts and per-sample MACs the search needs) and the
 * trainable models (src/train/graph-model.ts) are both derived from these graphs.
 */
import { UserError } from '../util/errors.js';
import { GraphBuilder, graphLayers, type ActivationFn, type Graph, type NodeSpec } from './graph.js';
import { tableWithFixedEnds, type Layer, type LayerTable } from './layer.js';

interface ConvOptions {
  stride?: number;
  padding?: number;
  groups?: number;
  dilation?: number;
  bias?: boolean;
}

/**
 * Records a network's nodes in forward order, PyTorch-style (square kernels, symmetric padding,
 * options defaulting as in torch.nn), on a GraphBuilder: `at` is the node the next one reads.
 */
class NetworkBuilder {
  private readonly b: GraphBuilder;
  at: string;

  constructor(name: string, [channels, height, width]: [number, number, number]) {
    this.b = new GraphBuilder(name, 'zoo');
    this.at = this.b.input('input', [height, width, channels]);
  }

  private push(name: string, spec: NodeSpec, inputs = [this.at]): this {
    this.at = this.b.add(name, spec, inputs);
    return this;
  }

  channels(node = this.at): number {
    const shape = this.b.shape(node);
    return shape[shape.length - 1];
  }

  conv(name: string, outChannels: number, kernel: number, opts: ConvOptions = {}): this {
    const { stride = 1, padding = 0, groups = 1, dilation = 1, bias = false } = opts;
    return this.push(name, {
      op: 'conv', filters: outChannels, kernel: [kernel, kernel], strides: [stride, stride], dilations: [dilation, dilation],
      pads: [padding, padding, padding, padding], groups, bias,
    });
  }

  /** Depthwise conv: one filter per input channel. */
  dwconv(name: string, kernel: number, opts: Omit<ConvOptions, 'groups'> = {}): this {
    return this.conv(name, this.channels(), kernel, { ...opts, groups: this.channels() });
  }

  bn(name: string): this {
    return this.push(name, { op: 'batchnorm', epsilon: 1e-5 });
  }

  act(name: string, fn: ActivationFn = 'relu'): this {
    return this.push(name, { op: 'activation', fn });
  }

  /** conv → batch norm → activation (none: `act` false) */
  convBn(conv: string, bn: string, outChannels: number, kernel: number, opts: ConvOptions & { act?: ActivationFn | false; actName?: string } = {}): this {
    this.conv(conv, outChannels, kernel, opts).bn(bn);
    return opts.act === false ? this : this.act(opts.actName ?? `${bn}.act`, opts.act ?? 'relu');
  }

  maxPool(name: string, kernel: number, stride: number, padding = 0): this {
    return this.push(name, { op: 'maxpool', kernel: [kernel, kernel], strides: [stride, stride], pads: [padding, padding, padding, padding] });
  }

  globalPool(name = 'avgpool'): this {
    return this.push(name, { op: 'globalavgpool', keepDims: false });
  }

  add(name: string, other: string, act?: ActivationFn): this {
    this.push(name, { op: 'add' }, [this.at, other]);
    return act ? this.act(`${name}.act`, act) : this;
  }

  /** Fully connected layer (with bias, as torch.nn.Linear) on the current features. */
  linear(name: string, outFeatures: number): this {
    return this.push(name, { op: 'dense', units: outFeatures, bias: true });
  }

  /** Option-A shortcut of CIFAR ResNets: strided subsampling and zero channel padding, no weights. */
  subsampleShortcut(prefix: string, from: string, stride: number, channels: number): string {
    const [h, w, c] = this.b.shape(from);
    const main = this.at;
    this.at = from;
    this.push(`${prefix}.shortcut.subsample`, { op: 'slice', ranges: [[0, h, stride], [0, w, stride], [0, c, 1]] });
    const extra = channels - c;
    this.push(`${prefix}.shortcut.pad`, { op: 'pad', pads: [[0, 0], [0, 0], [Math.floor(extra / 2), extra - Math.floor(extra / 2)]], value: 0 });
    const shortcut = this.at;
    this.at = main;
    return shortcut;
  }

  build(): Graph {
    return this.b.build(this.at).graph;
  }
}

/** torchvision ResNet: `blocks` per stage, basic (2 convs) or bottleneck (3 convs, stride on conv2: v1.5). */
function resnet(name: string, blocks: [number, number, number, number], bottleneck: boolean): Graph {
  const expansion = bottleneck ? 4 : 1;
  const b = new NetworkBuilder(name, [3, 224, 224]);
  b.convBn('conv1', 'bn1', 64, 7, { stride: 2, padding: 3, actName: 'relu' }).maxPool('maxpool', 3, 2, 1);
  blocks.forEach((count, stage) => {
    const planes = 64 * 2 ** stage;
    for (let i = 0; i < count; i++) {
      const prefix = `layer${stage + 1}.${i}`;
      const stride = stage > 0 && i === 0 ? 2 : 1;
      const input = b.at;
      const inChannels = b.channels();
      if (bottleneck) {
        b.convBn(`${prefix}.conv1`, `${prefix}.bn1`, planes, 1)
          .convBn(`${prefix}.conv2`, `${prefix}.bn2`, planes, 3, { stride, padding: 1 })
          .convBn(`${prefix}.conv3`, `${prefix}.bn3`, planes * expansion, 1, { act: false });
      } else {
        b.convBn(`${prefix}.conv1`, `${prefix}.bn1`, planes, 3, { stride, padding: 1 })
          .convBn(`${prefix}.conv2`, `${prefix}.bn2`, planes, 3, { padding: 1, act: false });
      }
      let shortcut = input;
      if (stride !== 1 || inChannels !== planes * expansion) {
        const main = b.at;
        b.at = input;
        b.convBn(`${prefix}.downsample.0`, `${prefix}.downsample.1`, planes * expansion, 1, { stride, act: false });
        shortcut = b.at;
        b.at = main;
      }
      b.add(`${prefix}.add`, shortcut, 'relu');
    }
  });
  return b.globalPool().linear('fc', 1000).build();
}

/** CIFAR ResNet-20 (He et al. 2016): option-A shortcuts (strided identity, zero-padded channels) have no weights. */
function resnet20(): Graph {
  const b = new NetworkBuilder('resnet20', [3, 32, 32]);
  b.convBn('conv1', 'bn1', 16, 3, { padding: 1, actName: 'relu' });
  [16, 32, 64].forEach((planes, stage) => {
    for (let i = 0; i < 3; i++) {
      const prefix = `layer${stage + 1}.${i}`;
      const stride = stage > 0 && i === 0 ? 2 : 1;
      const input = b.at;
      const inPlanes = b.channels();
      b.convBn(`${prefix}.conv1`, `${prefix}.bn1`, planes, 3, { stride, padding: 1 })
        .convBn(`${prefix}.conv2`, `${prefix}.bn2`, planes, 3, { padding: 1, act: false });
      const shortcut = stride !== 1 || inPlanes !== planes ? b.subsampleShortcut(prefix, input, stride, planes) : input;
      b.add(`${prefix}.add`, shortcut, 'relu');
    }
  });
  return b.globalPool().linear('fc', 10).build();
}

/** A MobileNetV1-style network: a 3x3 stem conv, stages of depthwise-separable units, global pooling, fc. */
export interface MobileNetSpec {
  /** [c, h, w] */
  input: [number, number, number];
  stem: { channels: number; stride: number };
  /** units per stage; the stride applies to the first unit's depthwise conv */
  stages: Array<{ channels: number; depth: number; stride: number }>;
  classes: number;
}

/**
 * MobileNetV1 with the module names of LIMPQ's `quantization_training/model/mobilenet.py`
 * (`first_conv` is a conv-BN-ReLU Sequential, hence `first_conv.0`). Strides are the standard ones
 * (stride 2 only on the first unit of stages 2-5) followed by global average pooling: the LIMPQ file
 * repeats the stage stride on every unit and has no pooling, which a 224x224 ImageNet model cannot be.
 */
export const MOBILENET_V1: MobileNetSpec = {
  input: [3, 224, 224],
  stem: { channels: 32, stride: 2 },
  stages: [
    { channels: 64, depth: 1, stride: 1 },
    { channels: 128, depth: 2, stride: 2 },
    { channels: 256, depth: 2, stride: 2 },
    { channels: 512, depth: 6, stride: 2 },
    { channels: 1024, depth: 2, stride: 2 },
  ],
  classes: 1000,
};

/**
 * mobilenet-mini: the trainable MobileNet-style net for 28x28 digits (src/train/models.ts builds
 * it from this spec), small stem and classifier so that high compression ratios are reachable.
 */
export const MOBILENET_MINI: MobileNetSpec = {
  input: [1, 28, 28],
  stem: { channels: 16, stride: 1 },
  stages: [
    { channels: 32, depth: 1, stride: 1 },
    { channels: 64, depth: 2, stride: 2 },
    { channels: 128, depth: 2, stride: 2 },
  ],
  classes: 10,
};

/** The MobileNet-style nets the training engine builds (src/train/models.ts), by zoo name. */
export const TRAINABLE_MOBILENETS: Readonly<Record<string, MobileNetSpec>> = {
  'mobilenet-mini': MOBILENET_MINI,
  // the same net for 32x32 RGB (CIFAR-10): 16x16 and 8x8 after the strided stages
  'mobilenet-mini-cifar': { ...MOBILENET_MINI, input: [3, 32, 32] },
};

/** Name prefix of a depthwise-separable unit (`stage` and `unit` from 0), as LIMPQ's mobilenet.py. */
export function mobileNetUnitName(stage: number, unit: number): string {
  return `features.stage${stage + 1}.unit${unit + 1}`;
}

/** LIMPQ's mobilenet.py modules: first_conv (conv, BN, ReLU) → units of dw_conv / pw_conv (conv, bn, relu) → pool → fc. */
function mobilenet(name: string, spec: MobileNetSpec): Graph {
  const b = new NetworkBuilder(name, spec.input);
  b.convBn('first_conv.0', 'first_conv.1', spec.stem.channels, 3, { stride: spec.stem.stride, padding: 1, actName: 'first_conv.2' });
  spec.stages.forEach(({ channels, depth, stride }, stage) => {
    for (let unit = 0; unit < depth; unit++) {
      const prefix = mobileNetUnitName(stage, unit);
      b.dwconv(`${prefix}.dw_conv.conv`, 3, { stride: unit === 0 ? stride : 1, padding: 1 }).bn(`${prefix}.dw_conv.bn`).act(`${prefix}.dw_conv.relu`)
        .convBn(`${prefix}.pw_conv.conv`, `${prefix}.pw_conv.bn`, channels, 1, { actName: `${prefix}.pw_conv.relu` });
    }
  });
  return b.globalPool().linear('fc', spec.classes).build();
}

/** torchvision MobileNetV2, width 1.0. */
function mobilenetv2(): Graph {
  const b = new NetworkBuilder('mobilenetv2', [3, 224, 224]);
  b.convBn('features.0.0', 'features.0.1', 32, 3, { stride: 2, padding: 1, act: 'relu6', actName: 'features.0.2' });
  // [expansion t, output channels c, repeats n, first stride s], as in the paper's table 2
  const settings: [number, number, number, number][] = [
    [1, 16, 1, 1],
    [6, 24, 2, 2],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
  ];
  let index = 1;
  for (const [expansion, channels, repeats, firstStride] of settings) {
    for (let i = 0; i < repeats; i++) {
      const block = `features.${index++}`;
      const prefix = `${block}.conv`;
      const stride = i === 0 ? firstStride : 1;
      const input = b.at;
      const inChannels = b.channels();
      const hidden = inChannels * expansion;
      const relu6 = { act: 'relu6' as const };
      // torchvision omits the expansion conv when t = 1, which shifts the submodule indices
      if (expansion === 1) {
        b.dwconv(`${prefix}.0.0`, 3, { stride, padding: 1 }).bn(`${prefix}.0.1`).act(`${prefix}.0.2`, 'relu6')
          .convBn(`${prefix}.1`, `${prefix}.2`, channels, 1, { act: false });
      } else {
        b.convBn(`${prefix}.0.0`, `${prefix}.0.1`, hidden, 1, { ...relu6, actName: `${prefix}.0.2` })
          .dwconv(`${prefix}.1.0`, 3, { stride, padding: 1 }).bn(`${prefix}.1.1`).act(`${prefix}.1.2`, 'relu6')
          .convBn(`${prefix}.2`, `${prefix}.3`, channels, 1, { act: false });
      }
      if (stride === 1 && inChannels === channels) b.add(`${block}.add`, input);
    }
  }
  b.convBn(`features.${index}.0`, `features.${index}.1`, 1280, 1, { act: 'relu6', actName: `features.${index}.2` });
  return b.globalPool().linear('classifier.1', 1000).build();
}

/** The small MNIST model the training engine trains: five conv-BN-ReLU, global average pool, fc. */
function mnistCnn(): Graph {
  const b = new NetworkBuilder('mnist-cnn', [1, 28, 28]);
  const convs: Array<[number, number]> = [[16, 1], [32, 2], [64, 1], [64, 2], [128, 1]];
  convs.forEach(([channels, stride], i) => b.convBn(`conv${i + 1}`, `bn${i + 1}`, channels, 3, { stride, padding: 1, actName: `relu${i + 1}` }));
  return b.globalPool().linear('fc', 10).build();
}

const IMAGENET_INPUT: [number, number, number] = [3, 224, 224];

interface ZooEntry {
  input: [number, number, number];
  build: () => Graph;
}

const mobilenetEntry = (name: string, spec: MobileNetSpec): ZooEntry => ({ input: spec.input, build: () => mobilenet(name, spec) });

const ZOO: Record<string, ZooEntry> = {
  resnet18: { input: IMAGENET_INPUT, build: () => resnet('resnet18', [2, 2, 2, 2], false) },
  resnet34: { input: IMAGENET_INPUT, build: () => resnet('resnet34', [3, 4, 6, 3], false) },
  resnet50: { input: IMAGENET_INPUT, build: () => resnet('resnet50', [3, 4, 6, 3], true) },
  resnet20: { input: [3, 32, 32], build: resnet20 },
  mobilenetv1: mobilenetEntry('mobilenetv1', MOBILENET_V1),
  mobilenetv2: { input: IMAGENET_INPUT, build: mobilenetv2 },
  'mnist-cnn': { input: [1, 28, 28], build: mnistCnn },
  'mobilenet-mini': mobilenetEntry('mobilenet-mini', TRAINABLE_MOBILENETS['mobilenet-mini']),
  'mobilenet-mini-cifar': mobilenetEntry('mobilenet-mini-cifar', TRAINABLE_MOBILENETS['mobilenet-mini-cifar']),
};

export const ZOO_MODEL_NAMES: readonly string[] = Object.freeze(Object.keys(ZOO));

/** The zoo models with a dataset here (MNIST digits or CIFAR-10): the ones `mpq train` takes by name. */
export const TRAINABLE_ZOO_MODELS: readonly string[] = Object.freeze(['mnist-cnn', 'resnet20', 'mobilenet-mini', 'mobilenet-mini-cifar']);

export function isZooModel(name: string): boolean {
  return Object.hasOwn(ZOO, name);
}

function zooEntry(name: string): ZooEntry {
  if (!isZooModel(name)) {
    throw new UserError(`unknown model '${name}'; known models: ${ZOO_MODEL_NAMES.join(', ')}`);
  }
  return ZOO[name];
}

/** The model as a graph (no weights: the training engine initialises them). */
export function zooGraph(name: string): Graph {
  return zooEntry(name).build();
}

/** Every conv / linear layer of the model, in forward order. */
export function zooLayers(name: string): Layer[] {
  return graphLayers(zooGraph(name));
}

/** Input shape [c, h, w]. */
export function zooInput(name: string): [number, number, number] {
  return [...zooEntry(name).input];
}

/** LIMPQ default: first and last layer fixed at 8/8 bits, the rest searchable. `fixFirstLast: false` searches all. */
export function zooLayerTable(name: string, opts: { fixFirstLast?: boolean; fixedBits?: number } = {}): LayerTable {
  return tableWithFixedEnds(name, zooInput(name), zooLayers(name), opts);
}
