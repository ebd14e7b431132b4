import * as tf from '@tensorflow/tfjs';
import { FULL_PRECISION_BITS, LsqQuantizer, type Quantizer, type Signedness } from '../quant/index.js';
import { batchNormTrain } from './backend/index.js';
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
    // He-normal init (fan-in), the usual choice before ReLU
    const std = Math.sqrt(2 / fanIn);
    const size = weightShape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(size);
    for (let i = 0; i < size; i++) values[i] = rng.normal() * std;
    this.weight = tf.variable(tf.tensor(values, weightShape), true);
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
  kernel: number;
  stride: number;
  padding: number;
}

/** Quantized 2-D convolution without bias (a batch norm follows), NHWC, symmetric zero padding. */
export class QuantConv2d extends QuantLayer {
  declare readonly kind: 'conv';

  constructor(name: string, readonly config: Conv2dConfig, rng: Prng, options: QuantLayerOptions) {
    const { kernel, inChannels, outChannels } = config;
    super('conv', name, [kernel, kernel, inChannels, outChannels], kernel * kernel * inChannels, rng, options);
  }

  apply(x: tf.Tensor4D, bits: LayerBits, training: boolean): tf.Tensor4D {
    const [input, weight] = this.quantizedOperands(x, bits, training);
    return tf.conv2d(input as tf.Tensor4D, weight as tf.Tensor4D, this.config.stride, this.config.padding);
  }
}

export interface DepthwiseConv2dConfig {
  channels: number;
  kernel: number;
  stride: number;
  padding: number;
}

/**
 * Quantized depthwise 2-D convolution (one filter per channel, PyTorch's groups = channels),
 * without bias, NHWC. The weight is held as [kh, kw, 1, channels] so that its last axis is the
 * output channel as for QuantConv2d (per-channel quantizers and BN folding work unchanged);
 * tf.depthwiseConv2d takes it as [kh, kw, channels, 1].
 */
export class QuantDepthwiseConv2d extends QuantLayer {
  declare readonly kind: 'conv';

  constructor(name: string, readonly config: DepthwiseConv2dConfig, rng: Prng, options: QuantLayerOptions) {
    const { kernel, channels } = config;
    super('conv', name, [kernel, kernel, 1, channels], kernel * kernel, rng, options);
  }

  apply(x: tf.Tensor4D, bits: LayerBits, training: boolean): tf.Tensor4D {
    const [input, weight] = this.quantizedOperands(x, bits, training);
    const { kernel, channels, stride, padding } = this.config;
    const filter = tf.reshape(weight, [kernel, kernel, channels, 1]) as tf.Tensor4D;
    return tf.depthwiseConv2d(input as tf.Tensor4D, filter, stride, padding);
  }
}

/** Quantized fully connected layer with a (full-precision) bias. */
export class QuantDense extends QuantLayer {
  declare readonly kind: 'linear';
  readonly bias: tf.Variable;

  constructor(name: string, readonly inFeatures: number, readonly outFeatures: number, rng: Prng, options: QuantLayerOptions) {
    super('linear', name, [inFeatures, outFeatures], inFeatures, rng, options);
    this.bias = tf.variable(tf.zeros([outFeatures]), true);
  }

  apply(x: tf.Tensor2D, bits: LayerBits, training: boolean): tf.Tensor2D {
    const [input, weight] = this.quantizedOperands(x, bits, training);
    return tf.add(tf.matMul(input as tf.Tensor2D, weight as tf.Tensor2D), this.bias);
  }

  override namedState(): Map<string, tf.Variable> {
    return new Map([...super.namedState(), [`${this.name}.bias`, this.bias]]);
  }

  override trainableVariables(): tf.Variable[] {
    return [...super.trainableVariables(), this.bias];
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
  static readonly EPSILON = 1e-5;
  readonly sets = new Map<string, BatchNormSet>();

  constructor(readonly name: string, readonly channels: number, bitsList: readonly number[]) {
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
  apply(x: tf.Tensor4D, key: string, training: boolean): tf.Tensor4D {
    const { gamma, beta, movingMean, movingVar } = this.set(key);
    if (!training) {
      return tf.tidy(() => tf.add(tf.mul(tf.sub(x, movingMean), tf.mul(tf.rsqrt(tf.add(movingVar, SwitchableBatchNorm.EPSILON)), gamma)), beta));
    }
    const { y, mean, variance } = batchNormTrain(x, gamma as tf.Tensor1D, beta as tf.Tensor1D, SwitchableBatchNorm.EPSILON);
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
