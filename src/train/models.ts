import * as tf from '@tensorflow/tfjs';
import { convKind, type Layer } from '../model/layer.js';
import { mobileNetUnitName, TRAINABLE_MOBILENETS, type MobileNetSpec } from '../model/zoo.js';
import { UserError } from '../util/errors.js';
import {
  bnKey, QuantConv2d, QuantDense, QuantDepthwiseConv2d, SwitchableBatchNorm,
  type LayerBits, type QuantLayerOptions, type QuantizerFactory,
} from './layers.js';
import { Prng } from '../util/prng.js';
import { LsqQuantizer } from '../quant/index.js';

/** Bits of every quantized layer by name; a layer left out runs in full precision. */
export type BitsPolicy = Record<string, LayerBits>;

/** LIMPQ keeps the first and last layer at 8/8 bits in quantized runs. */
export const FIXED_LAYER_BITS = 8;

export type QuantLayerModule = QuantConv2d | QuantDepthwiseConv2d | QuantDense;

/** Called with each quantized layer and its output during a forward pass (for shape tracing). */
export type LayerTrace = (layer: QuantLayerModule, output: tf.Tensor) => void;

/**
 * A network built from quantized layers and switchable batch norms, held as plain objects of
 * tf.Variables, with a forward function that takes the bits policy. Not tf.layers: switchable
 * parts and custom quantizers are simpler this way.
 */
export interface QuantModel {
  name: string;
  /** input [h, w, c] (NHWC) */
  inputShape: [number, number, number];
  numClasses: number;
  /** candidate bit-widths of the searchable layers */
  bitsList: readonly number[];
  /** every quantized layer, in forward order */
  layers: QuantLayerModule[];
  /** names of the layers kept at FIXED_LAYER_BITS (first and last) */
  fixedLayerNames: string[];
  /** names of the searchable layers, in order */
  searchableLayerNames: string[];
  batchNorms: SwitchableBatchNorm[];
  /** logits [n, classes] */
  forward(x: tf.Tensor4D, policy: BitsPolicy, training: boolean, trace?: LayerTrace): tf.Tensor2D;
}

export interface ModelOptions {
  /** candidate bit-widths for the searchable layers (none: full-precision training only) */
  bits?: readonly number[];
  /** seed for weight initialisation */
  seed?: number;
  /** builds every layer's quantizers; LSQ when absent */
  quantizers?: QuantizerFactory;
  /** LSQ weight step sizes per output channel (default: one per tensor, as LIMPQ) */
  perChannelWeights?: boolean;
}

export const TRAIN_MODEL_NAMES = ['mnist-cnn', 'resnet20', 'mobilenet-mini', 'mobilenet-mini-cifar'] as const;

export function createModel(name: string, options: ModelOptions = {}): QuantModel {
  const bits = [...(options.bits ?? [])];
  const rng = new Prng(options.seed ?? 0);
  const layerOptions = (fixed: boolean, inputSignedness: QuantLayerOptions['inputSignedness']): QuantLayerOptions => ({
    // fixed layers only ever run at FIXED_LAYER_BITS
    bitsList: fixed ? [FIXED_LAYER_BITS] : bits, inputSignedness, quantizers: options.quantizers,
    perChannelWeights: options.perChannelWeights,
  });
  if (name === 'mnist-cnn') return mnistCnn(bits, rng, layerOptions);
  if (name === 'resnet20') return resnet20(bits, rng, layerOptions);
  if (Object.hasOwn(TRAINABLE_MOBILENETS, name)) return mobilenet(name, TRAINABLE_MOBILENETS[name], bits, rng, layerOptions);
  throw new UserError(`--model: '${name}' cannot be trained; trainable models: ${TRAIN_MODEL_NAMES.join(', ')}`);
}

/** Whether the model's LSQ weight quantizers hold a step size per output channel. */
export function hasPerChannelWeightSteps(model: QuantModel): boolean {
  return model.layers.some((l) => l.weightQuantizer instanceof LsqQuantizer && l.weightQuantizer.options.channels !== undefined);
}

/** Every named variable of the model (weights, biases, BN sets, quantizer state), for checkpoints. */
export function namedVariables(model: QuantModel): Map<string, tf.Variable> {
  const all = new Map<string, tf.Variable>();
  for (const layer of model.layers) for (const [k, v] of layer.namedState()) all.set(k, v);
  for (const bn of model.batchNorms) for (const [k, v] of bn.namedState()) all.set(k, v);
  return all;
}

/** Frees every variable of a model. */
export function disposeModel(model: QuantModel): void {
  for (const v of namedVariables(model).values()) v.dispose();
}

export function trainableVariables(model: QuantModel): tf.Variable[] {
  return [...model.layers.flatMap((l) => l.trainableVariables()), ...model.batchNorms.flatMap((b) => b.trainableVariables())];
}

/** Conv / dense weights: the variables weight decay applies to (not biases, BN or step sizes). */
export function decayedVariables(model: QuantModel): tf.Variable[] {
  return model.layers.map((l) => l.weight);
}

/**
 * The layer table (names, weight counts, per-sample MACs, shapes) read off the tfjs model by
 * running one zero image through it, so it can be checked against the zoo's table.
 */
export function describeLayers(model: QuantModel): Layer[] {
  const layers: Layer[] = [];
  tf.tidy(() => {
    model.forward(tf.zeros([1, ...model.inputShape]) as tf.Tensor4D, {}, false, (layer, output) => {
      const params = layer.weight.size;
      if (!(layer instanceof QuantDense)) {
        const [, h, w] = output.shape;
        const { kernel, stride } = layer.config;
        const [inChannels, outChannels, groups] = layer instanceof QuantDepthwiseConv2d
          ? [layer.config.channels, layer.config.channels, layer.config.channels]
          : [layer.config.inChannels, layer.config.outChannels, 1];
        layers.push({
          name: layer.name, kind: convKind(inChannels, groups), params, macs: params * h! * w!, inChannels, outChannels,
          kernel: [kernel, kernel], stride, groups, outputSize: [h!, w!],
        });
      } else {
        layers.push({
          name: layer.name, kind: 'linear', params, macs: params, inChannels: layer.inFeatures,
          outChannels: layer.outFeatures, outputSize: [1, 1],
        });
      }
    });
  });
  return layers;
}

/** Options of a layer: first/last layers are `fixed`; the input is signed only for the image. */
type LayerOptionsOf = (fixed: boolean, inputSignedness: QuantLayerOptions['inputSignedness']) => QuantLayerOptions;

function bitsOf(policy: BitsPolicy, name: string): LayerBits {
  return policy[name] ?? { weightBits: 32, actBits: 32 };
}

/** conv → switchable BN (set chosen by the conv's weight bits) → optional ReLU */
function convBn(conv: QuantConv2d | QuantDepthwiseConv2d, bn: SwitchableBatchNorm, x: tf.Tensor4D, policy: BitsPolicy, training: boolean, trace?: LayerTrace, relu = true): tf.Tensor4D {
  const bits = bitsOf(policy, conv.name);
  const y = conv.apply(x, bits, training);
  trace?.(conv, y);
  const z = bn.apply(y, bnKey(bits.weightBits), training);
  return relu ? tf.relu(z) : z;
}

/**
 * mnist-cnn, as zoo.ts: 1x28x28 → conv1 16 (3x3 s1 p1) → conv2 32 (s2) → conv3 64 → conv4 64 (s2)
 * → conv5 128 → global average pool → fc 10; BN + ReLU after each conv.
 */
function mnistCnn(bits: number[], rng: Prng, layerOptions: LayerOptionsOf): QuantModel {
  const specs: Array<[string, number, number, number]> = [
    ['conv1', 1, 16, 1], ['conv2', 16, 32, 2], ['conv3', 32, 64, 1], ['conv4', 64, 64, 2], ['conv5', 64, 128, 1],
  ];
  const convs = specs.map(([name, inChannels, outChannels, stride], i) =>
    new QuantConv2d(name, { inChannels, outChannels, kernel: 3, stride, padding: 1 }, rng,
      layerOptions(i === 0, i === 0 ? 'signed' : 'unsigned')));
  const bns = convs.map((c, i) => new SwitchableBatchNorm(`bn${i + 1}`, c.config.outChannels, i === 0 ? [FIXED_LAYER_BITS] : bits));
  const fc = new QuantDense('fc', 128, 10, rng, layerOptions(true, 'unsigned'));
  return {
    name: 'mnist-cnn',
    inputShape: [28, 28, 1],
    numClasses: 10,
    bitsList: bits,
    layers: [...convs, fc],
    fixedLayerNames: ['conv1', 'fc'],
    searchableLayerNames: ['conv2', 'conv3', 'conv4', 'conv5'],
    batchNorms: bns,
    forward(x, policy, training, trace) {
      return tf.tidy(() => {
        let h = x;
        for (let i = 0; i < convs.length; i++) h = convBn(convs[i], bns[i], h, policy, training, trace);
        const pooled = tf.mean(h, [1, 2]) as tf.Tensor2D;
        const logits = fc.apply(pooled, bitsOf(policy, 'fc'), training);
        trace?.(fc, logits);
        return logits;
      });
    },
  };
}

/**
 * CIFAR ResNet-20 (He et al. 2016): conv1 16 → three stages of three basic blocks (16, 32, 64
 * channels; stride 2 entering stages 2 and 3) with option-A shortcuts (stride-2 subsampling and
 * zero channel padding, no parameters) → global average pool → fc 10.
 */
function resnet20(bits: number[], rng: Prng, layerOptions: LayerOptionsOf): QuantModel {
  const conv1 = new QuantConv2d('conv1', { inChannels: 3, outChannels: 16, kernel: 3, stride: 1, padding: 1 }, rng,
    layerOptions(true, 'signed'));
  const bn1 = new SwitchableBatchNorm('bn1', 16, [FIXED_LAYER_BITS]);
  const blocks: Array<{ conv1: QuantConv2d; bn1: SwitchableBatchNorm; conv2: QuantConv2d; bn2: SwitchableBatchNorm; stride: number; inPlanes: number; planes: number }> = [];
  let inPlanes = 16;
  [16, 32, 64].forEach((planes, stage) => {
    for (let i = 0; i < 3; i++) {
      const prefix = `layer${stage + 1}.${i}`;
      const stride = stage > 0 && i === 0 ? 2 : 1;
      const options = layerOptions(false, 'unsigned');
      blocks.push({
        conv1: new QuantConv2d(`${prefix}.conv1`, { inChannels: inPlanes, outChannels: planes, kernel: 3, stride, padding: 1 }, rng, options),
        bn1: new SwitchableBatchNorm(`${prefix}.bn1`, planes, bits),
        conv2: new QuantConv2d(`${prefix}.conv2`, { inChannels: planes, outChannels: planes, kernel: 3, stride: 1, padding: 1 }, rng, options),
        bn2: new SwitchableBatchNorm(`${prefix}.bn2`, planes, bits),
        stride, inPlanes, planes,
      });
      inPlanes = planes;
    }
  });
  const fc = new QuantDense('fc', 64, 10, rng, layerOptions(true, 'unsigned'));
  const convs = blocks.flatMap((b) => [b.conv1, b.conv2]);
  return {
    name: 'resnet20',
    inputShape: [32, 32, 3],
    numClasses: 10,
    bitsList: bits,
    layers: [conv1, ...convs, fc],
    fixedLayerNames: ['conv1', 'fc'],
    searchableLayerNames: convs.map((c) => c.name),
    batchNorms: [bn1, ...blocks.flatMap((b) => [b.bn1, b.bn2])],
    forward(x, policy, training, trace) {
      return tf.tidy(() => {
        let h = convBn(conv1, bn1, x, policy, training, trace);
        for (const b of blocks) {
          const y = convBn(b.conv1, b.bn1, h, policy, training, trace);
          const z = convBn(b.conv2, b.bn2, y, policy, training, trace, false);
          let shortcut = h;
          if (b.stride !== 1 || b.inPlanes !== b.planes) {
            const sub = tf.stridedSlice(h, [0, 0, 0, 0], h.shape, [1, b.stride, b.stride, 1]) as tf.Tensor4D;
            const extra = b.planes - b.inPlanes;
            shortcut = tf.pad(sub, [[0, 0], [0, 0], [0, 0], [Math.floor(extra / 2), extra - Math.floor(extra / 2)]]) as tf.Tensor4D;
          }
          h = tf.relu(tf.add(z, shortcut)) as tf.Tensor4D;
        }
        const pooled = tf.mean(h, [1, 2]) as tf.Tensor2D;
        const logits = fc.apply(pooled, bitsOf(policy, 'fc'), training);
        trace?.(fc, logits);
        return logits;
      });
    },
  };
}

/**
 * A MobileNetV1-style net from its zoo spec, LIMPQ's module names: first_conv (3x3 conv, BN, ReLU;
 * fixed) → depthwise-separable units (`…dw_conv.conv` 3x3 depthwise + BN + ReLU, `…pw_conv.conv`
 * 1x1 + BN + ReLU) → global average pool → fc (fixed).
 */
function mobilenet(name: string, spec: MobileNetSpec, bits: number[], rng: Prng, layerOptions: LayerOptionsOf): QuantModel {
  const [inChannels, height, width] = spec.input;
  const firstConv = new QuantConv2d('first_conv.0', { inChannels, outChannels: spec.stem.channels, kernel: 3, stride: spec.stem.stride, padding: 1 }, rng,
    layerOptions(true, 'signed'));
  const firstBn = new SwitchableBatchNorm('first_conv.1', spec.stem.channels, [FIXED_LAYER_BITS]);
  const units: Array<{ conv: QuantConv2d | QuantDepthwiseConv2d; bn: SwitchableBatchNorm }> = [];
  let channels = spec.stem.channels;
  spec.stages.forEach((stage, s) => {
    for (let u = 0; u < stage.depth; u++) {
      const prefix = mobileNetUnitName(s, u);
      const options = layerOptions(false, 'unsigned');
      const stride = u === 0 ? stage.stride : 1;
      units.push(
        { conv: new QuantDepthwiseConv2d(`${prefix}.dw_conv.conv`, { channels, kernel: 3, stride, padding: 1 }, rng, options),
          bn: new SwitchableBatchNorm(`${prefix}.dw_conv.bn`, channels, bits) },
        { conv: new QuantConv2d(`${prefix}.pw_conv.conv`, { inChannels: channels, outChannels: stage.channels, kernel: 1, stride: 1, padding: 0 }, rng, options),
          bn: new SwitchableBatchNorm(`${prefix}.pw_conv.bn`, stage.channels, bits) },
      );
      channels = stage.channels;
    }
  });
  const fc = new QuantDense('fc', channels, spec.classes, rng, layerOptions(true, 'unsigned'));
  return {
    name,
    inputShape: [height, width, inChannels],
    numClasses: spec.classes,
    bitsList: bits,
    layers: [firstConv, ...units.map((u) => u.conv), fc],
    fixedLayerNames: [firstConv.name, fc.name],
    searchableLayerNames: units.map((u) => u.conv.name),
    batchNorms: [firstBn, ...units.map((u) => u.bn)],
    forward(x, policy, training, trace) {
      return tf.tidy(() => {
        let h = convBn(firstConv, firstBn, x, policy, training, trace);
        for (const { conv, bn } of units) h = convBn(conv, bn, h, policy, training, trace);
        const pooled = tf.mean(h, [1, 2]) as tf.Tensor2D;
        const logits = fc.apply(pooled, bitsOf(policy, fc.name), training);
        trace?.(fc, logits);
        return logits;
      });
    },
  };
}
