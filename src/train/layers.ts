import * as tf from '@tensorflow/tfjs';
import { FULL_PRECISION_BITS, LsqQuantizer, type Quantizer, type Signedness } from '../quant/index.js';
import { batchNormTrain, groupedConv2d, nativeKernelsActive } from './backend/index.js';
import type { Prng } from '../util/prng.js';

/** Bit-widths of one quantized layer; FULL_PRECISION_BITS (32) leaves that side unquantized. */
export interface LayerBits {
  weightBits: number;
  actBits: number;
}

export interface QuantLayerOptions {
  /** candidate bit-widths the quantizers hold step sizes for */
  bitsList: readonly number[];
  /** range of the input quantizer: 'unsigned' after ReLU, 'signed' for normalised images */
  inputSignedness: Signedness;
  /** one weight step size per output channel instead of one per tensor */
  perChannelWeights?: boolean;
  /** builds the layer's quantizers; LSQ (LIMPQ) when absent */
  quantizers?: QuantizerFactory;
}

/** What a quantizer factory is told about the tensor it will quantize. */
export interface QuantizerSite {
  layerName: string;
  role: 'weight' | 'input';
  kind: 'conv' | 'linear';
  bitsList: readonly number[];
  signedness: Signedness;
  /** output channels (last axis of the weight) */
  outChannels: number;
  weightShape: readonly number[];
}

export type QuantizerFactory = (site: QuantizerSite) => Quantizer;

/** LIMPQ's quantizers: LSQ, weight step sizes per tensor or per output channel. */
export function lsqQuantizers(perChannelWeights = false): QuantizerFactory {
  return (site) => new LsqQuantizer({
    bitsList: site.bitsList,
    signedness: site.signedness,
    init: site.role === 'weight' ? 'weight' : 'activation',
    ...(site.role === 'weight' && perChannelWeights ? { channels: site.outChannels } : {}),
  });
}

/**
 * PyTorch's default initialisation of conv and linear layers (kaiming_uniform with a = √5, and the
 * same bound for biases): uniform in ±1/√fan_in. The scale matters though a batch norm follows: a
 * weight's relative update goes as lr/|w|², so He-normal weights (√6 times larger) trained ~6 times
 * slower (mnist-cnn, 1 epoch on 4,000 digits: 60% against PyTorch's 75%).
 */
function torchDefaultInit(shape: number[], fanIn: number, rng: Prng): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (2 * rng.next() - 1) * bound);
}

/**
 * A conv or dense layer with a weight quantizer and an input (activation) quantizer, as LIMPQ's
 * QuanConv2d / QuanLinear. Weights are in tfjs layout: conv [kh, kw, in, out], dense [in, out].
 */
abstract class QuantLayer {
  readonly weight: tf.Variable;
  /** replaceable: post-training tools (simulate) swap in their own quantizers */
  weightQuantizer: Quantizer;
  inputQuantizer: Quantizer;

  constructor(
    readonly kind: 'conv' | 'linear',
    readonly name: string,
    weightShape: number[],
    fanIn: number,
    rng: Prng,
    options: QuantLayerOptions,
  ) {
    this.weight = tf.variable(tf.tensor(torchDefaultInit(weightShape, fanIn, rng), weightShape), true);
    const outChannels = weightShape[weightShape.length - 1];
    const factory = options.quantizers ?? lsqQuantizers(options.perChannelWeights);
    const site = { layerName: name, kind, bitsList: options.bitsList, outChannels, weightShape };
    this.weightQuantizer = factory({ ...site, role: 'weight', signedness: 'signed' });
    this.inputQuantizer = factory({ ...site, role: 'input', signedness: options.inputSignedness });
  }

  /** Quantized input and weight at the given bits. */
  protected quantizedOperands(x: tf.Tensor, bits: LayerBits, training: boolean): [tf.Tensor, tf.Tensor] {
    this.weightQuantizer.activeBits = bits.weightBits;
    this.inputQuantizer.activeBits = bits.actBits;
    return [this.inputQuantizer.quantize(x, training), this.weightQuantizer.quantize(this.weight, training)];
  }

  namedState(): Map<string, tf.Variable> {
    const state = new Map<string, tf.Variable>([[`${this.name}.weight`, this.weight]]);
    for (const [key, v] of this.weightQuantizer.namedState()) state.set(`${this.name}.quan_w_fn.${key}`, v);
    for (const [key, v] of this.inputQuantizer.namedState()) state.set(`${this.name}.quan_a_fn.${key}`, v);
    return state;
  }

  trainableVariables(): tf.Variable[] {
    return [this.weight, ...this.weightQuantizer.trainableVariables(), ...this.inputQuantizer.trainableVariables()];
  }
}

export interface Conv2dConfig {
  inChannels: number;
  outChannels: number;
  /** k or [kh, kw] */
  kernel: number | [number, number];
  /** s or [sh, sw] */
  stride: number | [number, number];
  /** p on every side, or [top, left, bottom, right] */
  padding: number | [number, number, number, number];
  /** d or [dh, dw] (default 1) */
  dilation?: number | [number, number];
  /** input and output channels split into this many groups (default 1; in-channels: depthwise) */
  groups?: number;
  /** a full-precision bias after the convolution (default none: a batch norm follows) */
  bias?: boolean;
}

/** A conv's shape with every option spelled out. */
export interface ConvShape {
  inChannels: number;
  outChannels: number;
  kernel: [number, number];
  strides: [number, number];
  pads: [number, number, number, number];
  dilations: [number, number];
  groups: number;
}

const pair = (x: number | [number, number]): [number, number] => (typeof x === 'number' ? [x, x] : [...x]);

function convShape(c: Conv2dConfig): ConvShape {
  const pads = typeof c.padding === 'number' ? [c.padding, c.padding, c.padding, c.padding] as ConvShape['pads'] : [...c.padding] as ConvShape['pads'];
  return {
    inChannels: c.inChannels, outChannels: c.outChannels, kernel: pair(c.kernel), strides: pair(c.stride), pads,
    dilations: pair(c.dilation ?? 1), groups: c.groups ?? 1,
  };
}

/**
 * A kernel with dilation d as the equivalent dense kernel: d − 1 zeros between taps. tfjs has
 * no gradients for dilated convolutions; this form is differentiable, at d² times the MACs.
 */
function dilateKernel(w: tf.Tensor4D, [dh, dw]: [number, number]): tf.Tensor4D {
  if (dh === 1 && dw === 1) return w;
  const [kh, kw, ci, co] = w.shape;
  const spread = tf.pad(tf.reshape(w, [kh, 1, kw, 1, ci, co]), [[0, 0], [0, dh - 1], [0, 0], [0, dw - 1], [0, 0], [0, 0]]);
  const dense = tf.reshape(spread, [kh * dh, kw * dw, ci, co]);
  return tf.slice(dense, [0, 0, 0, 0], [(kh - 1) * dh + 1, (kw - 1) * dw + 1, ci, co]) as tf.Tensor4D;
}

/**
 * NHWC convolution of any groups (1, depthwise with a channel multiplier, or in between), strides,
 * dilations and padding. `weight` is [kh, kw, in/groups, out], output channel o reading group
 * o / (out/groups) as in PyTorch and ONNX. Symmetric padding goes to the convolution (the tested
 * fast path); asymmetric padding (TensorFlow's `same` at stride 2) is an explicit zero pad first.
 */
export function convolve(x: tf.Tensor4D, weight: tf.Tensor4D, s: ConvShape): tf.Tensor4D {
  const [top, left, bottom, right] = s.pads;
  // the native kernels take every case as one convolution each way, dilated gradients included
  if (nativeKernelsActive()) {
    return groupedConv2d(x, weight, { strides: s.strides, dilations: s.dilations, groups: s.groups, pad: [[0, 0], [top, bottom], [left, right], [0, 0]] });
  }
  let input = x;
  let pad: number | 'valid' = top;
  if (!(top === bottom && top === left && left === right)) {
    input = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]);
    pad = 'valid';
  }
  const filter = dilateKernel(weight, s.dilations);
  const { groups, inChannels, outChannels } = s;
  if (groups === 1) return tf.conv2d(input, filter, s.strides, pad);
  const [kh, kw] = filter.shape;
  if (groups === inChannels) {
    // [kh, kw, 1, C·M] holds output channel c·M + m at the index [kh, kw, C, M] puts (c, m)
    return tf.depthwiseConv2d(input, tf.reshape(filter, [kh, kw, inChannels, outChannels / inChannels]) as tf.Tensor4D, s.strides, pad);
  }
  const inputs = tf.split(input, groups, 3) as tf.Tensor4D[];
  const filters = tf.split(filter, groups, 3) as tf.Tensor4D[];
  return tf.concat(inputs.map((xi, g) => tf.conv2d(xi, filters[g], s.strides, pad)), 3) as tf.Tensor4D;
}

/** Quantized 2-D convolution, NHWC: any groups (depthwise too), strides, dilations, padding, optional bias. */
export class QuantConv2d extends QuantLayer {
  declare readonly kind: 'conv';
  readonly shape: ConvShape;
  readonly bias?: tf.Variable;

  constructor(name: string, config: Conv2dConfig, rng: Prng, options: QuantLayerOptions) {
    const shape = convShape(config);
    const { kernel: [kh, kw], inChannels, outChannels, groups } = shape;
    if (inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new RangeError(`${name}: groups ${groups} must divide ${inChannels} input and ${outChannels} output channels`);
    }
    super('conv', name, [kh, kw, inChannels / groups, outChannels], kh * kw * (inChannels / groups), rng, options);
    this.shape = shape;
    if (config.bias) this.bias = tf.variable(tf.tensor(torchDefaultInit([outChannels], kh * kw * (inChannels / groups), rng)), true);
  }

  /** A depthwise conv (one filter per input channel, or several: a channel multiplier). */
  get depthwise(): boolean {
    return this.shape.groups > 1 && this.shape.groups === this.shape.inChannels;
  }

  apply(x: tf.Tensor4D, bits: LayerBits, training: boolean): tf.Tensor4D {
    const [input, weight] = this.quantizedOperands(x, bits, training);
    const y = convolve(input as tf.Tensor4D, weight as tf.Tensor4D, this.shape);
    return this.bias ? tf.add(y, this.bias) : y;
  }

  override namedState(): Map<string, tf.Variable> {
    return this.bias ? new Map([...super.namedState(), [`${this.name}.bias`, this.bias]]) : super.namedState();
  }

  override trainableVariables(): tf.Variable[] {
    return this.bias ? [...super.trainableVariables(), this.bias] : super.trainableVariables();
  }
}

/** Quantized fully connected layer with a (full-precision) bias, on the last axis of its input. */
export class QuantDense extends QuantLayer {
  declare readonly kind: 'linear';
  readonly bias?: tf.Variable;

  constructor(name: string, readonly inFeatures: number, readonly outFeatures: number, rng: Prng, options: QuantLayerOptions, bias = true) {
    super('linear', name, [inFeatures, outFeatures], inFeatures, rng, options);
    if (bias) this.bias = tf.variable(tf.tensor(torchDefaultInit([outFeatures], inFeatures, rng)), true);
  }

  apply(x: tf.Tensor, bits: LayerBits, training: boolean): tf.Tensor {
    const [input, weight] = this.quantizedOperands(x, bits, training);
    // [..., in] · [in, out]: leading axes (a sequence, a feature map) are positions
    const lead = input.shape.slice(0, -1);
    const flat = input.rank === 2 ? input as tf.Tensor2D : tf.reshape(input, [-1, this.inFeatures]) as tf.Tensor2D;
    const y = tf.matMul(flat, weight as tf.Tensor2D);
    const biased = this.bias ? tf.add(y, this.bias) : y;
    return input.rank === 2 ? biased : tf.reshape(biased, [...lead, this.outFeatures]);
  }

  override namedState(): Map<string, tf.Variable> {
    return this.bias ? new Map([...super.namedState(), [`${this.name}.bias`, this.bias]]) : super.namedState();
  }

  override trainableVariables(): tf.Variable[] {
    return this.bias ? [...super.trainableVariables(), this.bias] : super.trainableVariables();
  }
}

/** Key of a batch-norm set: 'fp' or the bit-width as a string. */
export function bnKey(bits: number): string {
  return bits >= FULL_PRECISION_BITS ? 'fp' : String(bits);
}

interface BatchNormSet {
  gamma: tf.Variable;
  beta: tf.Variable;
  movingMean: tf.Variable;
  movingVar: tf.Variable;
}

/**
 * Switchable batch norm (LIMPQ, after slimmable networks): one set of statistics and affine
 * parameters per candidate bit-width plus a full-precision set, since the statistics of a layer's
 * output differ with its precision. Normalises over N, H, W of an NHWC tensor.
 */
export class SwitchableBatchNorm {
  static readonly MOMENTUM = 0.1;
  /** PyTorch's default; imported batch norms keep their own (Keras: 1e-3) */
  static readonly EPSILON = 1e-5;
  readonly sets = new Map<string, BatchNormSet>();

  constructor(readonly name: string, readonly channels: number, bitsList: readonly number[], readonly epsilon = SwitchableBatchNorm.EPSILON) {
    for (const key of ['fp', ...bitsList.map(String)]) {
      this.sets.set(key, {
        gamma: tf.variable(tf.ones([channels]), true),
        beta: tf.variable(tf.zeros([channels]), true),
        movingMean: tf.variable(tf.zeros([channels]), false),
        movingVar: tf.variable(tf.ones([channels]), false),
      });
    }
  }

  set(key: string): BatchNormSet {
    const set = this.sets.get(key);
    if (!set) throw new RangeError(`${this.name}: no batch-norm set '${key}' (have ${[...this.sets.keys()].join(', ')})`);
    return set;
  }

  /** Training: batch statistics, and the set's moving statistics are updated. Else moving statistics. */
  apply<T extends tf.Tensor>(x: T, key: string, training: boolean): T {
    const { gamma, beta, movingMean, movingVar } = this.set(key);
    if (!training) {
      return tf.tidy(() => tf.add(tf.mul(tf.sub(x, movingMean), tf.mul(tf.rsqrt(tf.add(movingVar, this.epsilon)), gamma)), beta)) as T;
    }
    const { y, mean, variance } = batchNormTrain(x, gamma as tf.Tensor1D, beta as tf.Tensor1D, this.epsilon);
    const n = x.size / this.channels;
    tf.tidy(() => {
      const m = SwitchableBatchNorm.MOMENTUM;
      movingMean.assign(tf.add(tf.mul(movingMean, 1 - m), tf.mul(mean, m)));
      // moving variance uses the unbiased estimate, as PyTorch
      movingVar.assign(tf.add(tf.mul(movingVar, 1 - m), tf.mul(variance, (m * n) / Math.max(n - 1, 1))));
    });
    mean.dispose();
    variance.dispose();
    return y;
  }

  namedState(): Map<string, tf.Variable> {
    const state = new Map<string, tf.Variable>();
    for (const [key, set] of this.sets) {
      state.set(`${this.name}.bns.${key}.weight`, set.gamma);
      state.set(`${this.name}.bns.${key}.bias`, set.beta);
      state.set(`${this.name}.bns.${key}.running_mean`, set.movingMean);
      state.set(`${this.name}.bns.${key}.running_var`, set.movingVar);
    }
    return state;
  }

  trainableVariables(): tf.Variable[] {
    return [...this.sets.values()].flatMap((s) => [s.gamma, s.beta]);
  }
}
