/**
 * The model zoo as layer tables: every conv / linear layer of a few standard networks, with the
 * names, shapes, weight counts and per-sample MACs the bit-width search needs. Entries are written
 * as in the PyTorch model definitions; a builder tracks the feature-map shape between them.
 */
import { UserError } from '../util/errors.js';
import { convLayer, tableWithFixedEnds, type Layer, type LayerTable } from './layer.js';

interface FeatureMap {
  channels: number;
  height: number;
  width: number;
}

interface ConvOptions {
  stride?: number;
  padding?: number;
  groups?: number;
  dilation?: number;
}

/** PyTorch's output size for conv and pooling (floor mode). */
function convOutputSize(size: number, kernel: number, stride: number, padding: number, dilation: number): number {
  return Math.floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1;
}

/** Records layers in forward order while tracking the current feature map. Options default as in PyTorch. */
class NetworkBuilder {
  readonly layers: Layer[] = [];
  private map: FeatureMap;

  constructor([channels, height, width]: [number, number, number]) {
    this.map = { channels, height, width };
  }

  get featureMap(): FeatureMap {
    return { ...this.map };
  }

  conv(name: string, outChannels: number, kernel: number, opts: ConvOptions = {}): this {
    const { stride = 1, padding = 0, groups = 1, dilation = 1 } = opts;
    const { channels: inChannels, height, width } = this.map;
    if (inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new Error(`${name}: groups ${groups} must divide ${inChannels} -> ${outChannels} channels`);
    }
    const outH = convOutputSize(height, kernel, stride, padding, dilation);
    const outW = convOutputSize(width, kernel, stride, padding, dilation);
    this.layers.push(convLayer({ name, inChannels, outChannels, kernel: [kernel, kernel], stride, groups, outputSize: [outH, outW] }));
    this.map = { channels: outChannels, height: outH, width: outW };
    return this;
  }

  /** Depthwise conv: one filter per input channel. */
  dwconv(name: string, kernel: number, opts: Omit<ConvOptions, 'groups'> = {}): this {
    return this.conv(name, this.map.channels, kernel, { ...opts, groups: this.map.channels });
  }

  /** Max or average pooling: changes the spatial size only. */
  pool(kernel: number, stride: number, padding = 0): this {
    this.map.height = convOutputSize(this.map.height, kernel, stride, padding, 1);
    this.map.width = convOutputSize(this.map.width, kernel, stride, padding, 1);
    return this;
  }

  globalPool(): this {
    this.map.height = 1;
    this.map.width = 1;
    return this;
  }

  /** Fully connected layer on the flattened feature map. */
  linear(name: string, outFeatures: number): this {
    const inFeatures = this.map.channels * this.map.height * this.map.width;
    this.layers.push({
      name,
      kind: 'linear',
      inChannels: inFeatures,
      outChannels: outFeatures,
      kernel: [1, 1],
      stride: 1,
      groups: 1,
      outputSize: [1, 1],
      params: inFeatures * outFeatures,
      macs: inFeatures * outFeatures,
    });
    this.map = { channels: outFeatures, height: 1, width: 1 };
    return this;
  }

  /**
   * A projection shortcut: layers applied to `input` whose result is added to the main path, so it
   * must come out in the main path's shape. The main path's feature map is kept.
   */
  shortcut(input: FeatureMap, layers: (branch: this) => void): this {
    const main = this.featureMap;
    this.map = { ...input };
    layers(this);
    const { channels, height, width } = this.map;
    if (channels !== main.channels || height !== main.height || width !== main.width) {
      throw new Error(
        `shortcut output ${channels}x${height}x${width} does not match ${main.channels}x${main.height}x${main.width}`,
      );
    }
    this.map = main;
    return this;
  }
}

/** torchvision ResNet: `blocks` per stage, basic (2 convs) or bottleneck (3 convs, stride on conv2: v1.5). */
function resnet(blocks: [number, number, number, number], bottleneck: boolean): Layer[] {
  const expansion = bottleneck ? 4 : 1;
  const b = new NetworkBuilder([3, 224, 224]);
  b.conv('conv1', 64, 7, { stride: 2, padding: 3 }).pool(3, 2, 1);
  blocks.forEach((count, stage) => {
    const planes = 64 * 2 ** stage;
    for (let i = 0; i < count; i++) {
      const prefix = `layer${stage + 1}.${i}`;
      const stride = stage > 0 && i === 0 ? 2 : 1;
      const input = b.featureMap;
      if (bottleneck) {
        b.conv(`${prefix}.conv1`, planes, 1)
          .conv(`${prefix}.conv2`, planes, 3, { stride, padding: 1 })
          .conv(`${prefix}.conv3`, planes * expansion, 1);
      } else {
        b.conv(`${prefix}.conv1`, planes, 3, { stride, padding: 1 }).conv(`${prefix}.conv2`, planes, 3, { padding: 1 });
      }
      if (stride !== 1 || input.channels !== planes * expansion) {
        b.shortcut(input, (s) => s.conv(`${prefix}.downsample.0`, planes * expansion, 1, { stride }));
      }
    }
  });
  return b.globalPool().linear('fc', 1000).layers;
}

/** CIFAR ResNet-20 (He et al. 2016): option-A shortcuts (strided identity, zero-padded channels) have no weights. */
function resnet20(): Layer[] {
  const b = new NetworkBuilder([3, 32, 32]);
  b.conv('conv1', 16, 3, { padding: 1 });
  [16, 32, 64].forEach((planes, stage) => {
    for (let i = 0; i < 3; i++) {
      const prefix = `layer${stage + 1}.${i}`;
      const stride = stage > 0 && i === 0 ? 2 : 1;
      b.conv(`${prefix}.conv1`, planes, 3, { stride, padding: 1 }).conv(`${prefix}.conv2`, planes, 3, { padding: 1 });
    }
  });
  return b.globalPool().linear('fc', 10).layers;
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

function mobilenet(spec: MobileNetSpec): Layer[] {
  const b = new NetworkBuilder(spec.input);
  b.conv('first_conv.0', spec.stem.channels, 3, { stride: spec.stem.stride, padding: 1 });
  spec.stages.forEach(({ channels, depth, stride }, stage) => {
    for (let unit = 0; unit < depth; unit++) {
      const prefix = mobileNetUnitName(stage, unit);
      b.dwconv(`${prefix}.dw_conv.conv`, 3, { stride: unit === 0 ? stride : 1, padding: 1 })
        .conv(`${prefix}.pw_conv.conv`, channels, 1);
    }
  });
  return b.globalPool().linear('fc', spec.classes).layers;
}

/** torchvision MobileNetV2, width 1.0. */
function mobilenetv2(): Layer[] {
  const b = new NetworkBuilder([3, 224, 224]);
  b.conv('features.0.0', 32, 3, { stride: 2, padding: 1 });
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
      const prefix = `features.${index++}.conv`;
      const stride = i === 0 ? firstStride : 1;
      const hidden = b.featureMap.channels * expansion;
      // torchvision omits the expansion conv when t = 1, which shifts the submodule indices
      if (expansion === 1) {
        b.dwconv(`${prefix}.0.0`, 3, { stride, padding: 1 }).conv(`${prefix}.1`, channels, 1);
      } else {
        b.conv(`${prefix}.0.0`, hidden, 1)
          .dwconv(`${prefix}.1.0`, 3, { stride, padding: 1 })
          .conv(`${prefix}.2`, channels, 1);
      }
    }
  }
  b.conv(`features.${index}.0`, 1280, 1);
  return b.globalPool().linear('classifier.1', 1000).layers;
}

/** The small MNIST model the training engine trains (its tfjs version follows the same spec). */
function mnistCnn(): Layer[] {
  return new NetworkBuilder([1, 28, 28])
    .conv('conv1', 16, 3, { padding: 1 })
    .conv('conv2', 32, 3, { stride: 2, padding: 1 })
    .conv('conv3', 64, 3, { padding: 1 })
    .conv('conv4', 64, 3, { stride: 2, padding: 1 })
    .conv('conv5', 128, 3, { padding: 1 })
    .globalPool()
    .linear('fc', 10).layers;
}

const IMAGENET_INPUT: [number, number, number] = [3, 224, 224];

interface ZooEntry {
  input: [number, number, number];
  build: () => Layer[];
}

const mobilenetEntry = (spec: MobileNetSpec): ZooEntry => ({ input: spec.input, build: () => mobilenet(spec) });

const ZOO: Record<string, ZooEntry> = {
  resnet18: { input: IMAGENET_INPUT, build: () => resnet([2, 2, 2, 2], false) },
  resnet34: { input: IMAGENET_INPUT, build: () => resnet([3, 4, 6, 3], false) },
  resnet50: { input: IMAGENET_INPUT, build: () => resnet([3, 4, 6, 3], true) },
  resnet20: { input: [3, 32, 32], build: resnet20 },
  mobilenetv1: mobilenetEntry(MOBILENET_V1),
  mobilenetv2: { input: IMAGENET_INPUT, build: mobilenetv2 },
  'mnist-cnn': { input: [1, 28, 28], build: mnistCnn },
  'mobilenet-mini': mobilenetEntry(TRAINABLE_MOBILENETS['mobilenet-mini']),
  'mobilenet-mini-cifar': mobilenetEntry(TRAINABLE_MOBILENETS['mobilenet-mini-cifar']),
};

export const ZOO_MODEL_NAMES: readonly string[] = Object.freeze(Object.keys(ZOO));

export function isZooModel(name: string): boolean {
  return Object.hasOwn(ZOO, name);
}

function zooEntry(name: string): ZooEntry {
  if (!isZooModel(name)) {
    throw new UserError(`unknown model '${name}'; known models: ${ZOO_MODEL_NAMES.join(', ')}`);
  }
  return ZOO[name];
}

/** Every conv / linear layer of the model, in forward order. */
export function zooLayers(name: string): Layer[] {
  return zooEntry(name).build();
}

/** Input shape [c, h, w]. */
export function zooInput(name: string): [number, number, number] {
  return [...zooEntry(name).input];
}

/** LIMPQ default: first and last layer fixed at 8/8 bits, the rest searchable. `fixFirstLast: false` searches all. */
export function zooLayerTable(name: string, opts: { fixFirstLast?: boolean; fixedBits?: number } = {}): LayerTable {
  return tableWithFixedEnds(name, zooInput(name), zooLayers(name), opts);
}
