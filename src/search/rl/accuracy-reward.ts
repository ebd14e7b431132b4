import * as tf from '@tensorflow/tfjs';
import type { BackendName } from '../../train/backend/index.js';
import { epochOrder, pick, type ImageSet } from '../../train/data.js';
import { DEFAULT_HYPERPARAMETERS, evaluate, trainLoop, type Hyperparameters } from '../../train/loops.js';
import { createModel, disposeModel, namedVariables, type BitsPolicy, type QuantModel } from '../../train/models.js';
import { FULL_PRECISION, withFixedLayers } from '../../train/policies.js';
import { prepare, startingWeights } from '../../train/run.js';
import type { LayerSelection } from '../../model/graph-table.js';
import { FieldError } from '../../util/errors.js';
import type { Problem } from '../problem.js';
import type { RewardFunction, RewardScore } from './searcher.js';

/** The held-out images never depend on --seed, so runs with different seeds are scored alike. */
export const HOLDOUT_SPLIT_SEED = 0;
/** HAQ's reward is 0.1 per point of top-1 (in %) against the full-precision model: 10 per unit of top-1. */
const SIGNAL_PER_TOP1 = 10;

export const ACCURACY_REWARD_FORMULA =
  'reward = top-1 (0-1) on the held-out split after the fine-tune; the agent learns from 10 * (top-1 - full-precision top-1) on every layer\'s transition (HAQ: 0.1 * delta top-1 in %)';

export interface AccuracyRewardOptions {
  /** a trainable zoo model or an ONNX / tfjs model file */
  model: string;
  /** checkpoint of the model to start every fine-tune from (full precision, from mpq train); default: an imported model's own weights */
  from?: string;
  /** the search's fixed layers (the model is built with the same) */
  layers?: LayerSelection;
  /** candidate bit-widths of the search: the model holds step sizes and BN sets for these */
  bits: number[];
  /** fine-tune batches per scored policy */
  steps: number;
  /** training images held out to score on */
  holdout: number;
  /** seed of the fine-tune (sample order, augmentation); the same for every rollout of a run */
  seed: number;
  backend?: BackendName;
  /** dataset directory; default the bundled mnist digits */
  dataDir?: string;
  batchSize?: number;
  log?: (line: string) => void;
}

/** The settings that define the reward, recorded in rl-run.json. */
export interface AccuracyRewardSettings {
  kind: 'accuracy';
  formula: string;
  model: string;
  from: string | null;
  steps: number;
  batch_size: number;
  lr: number;
  finetune_images: number;
  finetune_seed: number;
  holdout: number;
  holdout_split_seed: number;
  dataset: string;
  backend: string;
  fp_top1: number;
}

/**
 * HAQ / PocketFlow's accuracy reward: each policy is scored by a short LSQ fine-tune from the
 * checkpoint's weights (`steps` batches of training images, cosine LR, the finetune stage's
 * hyperparameters) followed by top-1 on images held out of the TRAINING split by a fixed-seed
 * shuffle (the test split is never looked at). The same images and seed serve every rollout, so
 * a policy's reward is a function of its bits and is cached. The weights are snapshotted once
 * and assigned back before each fine-tune (step sizes, their init flags and BN sets included).
 */
export class AccuracyReward implements RewardFunction {
  readonly kind = 'accuracy';
  private readonly cache = new Map<string, number>();
  private fineTunes = 0;

  private constructor(
    readonly backend: string,
    private readonly problem: Problem,
    private readonly model: QuantModel,
    private readonly snapshot: Map<tf.Variable, tf.Tensor>,
    private readonly finetuneSet: ImageSet,
    private readonly heldOut: ImageSet,
    private readonly hyper: Hyperparameters,
    private readonly seed: number,
    readonly settings: AccuracyRewardSettings,
    /** the dataset's test split: never scored on here, for benchmarks comparing policies on unseen images */
    readonly testSet: ImageSet,
  ) {}

  /**
   * Checks the inputs (before the backend starts), loads the checkpoint and data, scores full
   * precision. Errors name startRlRun's fields (`reward.holdout`), which hold these options.
   */
  static async create(problem: Problem, o: AccuracyRewardOptions): Promise<AccuracyReward> {
    // the training commands' own checks (trainable model, --from a checkpoint) come before the backend starts
    const { backend, model, data, source } = await prepare(o, (m) => createModel(m, { bits: o.bits, layers: o.layers }));
    const expected = model.searchableLayerNames;
    if (problem.layerNames.length !== expected.length || problem.layerNames.some((n, i) => n !== expected[i])) {
      throw new FieldError((n) => `${n('reward')} accuracy: the search's layers [${problem.layerNames.join(', ')}] are not ${o.model}'s searchable layers [${expected.join(', ')}] (its first and last stay at 8 bits: drop ${n('layers.fixFirstLast=false')})`);
    }
    // a starting point, as finetune's: step sizes of another layout (per channel) start from data
    startingWeights(model, source, o.from, { restartReshapedQuantizers: true });
    if (o.holdout >= data.train.count) {
      throw new FieldError((n) => `${n('reward.holdout')}: ${o.holdout} is not less than the ${data.train.count} training images`);
    }
    const hyper: Hyperparameters = { ...DEFAULT_HYPERPARAMETERS.finetune, epochs: 1, batchSize: o.batchSize ?? DEFAULT_HYPERPARAMETERS.finetune.batchSize };
    const order = epochOrder(data.train.count, HOLDOUT_SPLIT_SEED);
    const heldOut = pick(data.train, data.train.shape, order.subarray(0, o.holdout));
    const finetuneSet = pick(data.train, data.train.shape, order.subarray(o.holdout, o.holdout + o.steps * hyper.batchSize));
    const snapshot = new Map([...namedVariables(model).values()].map((v) => [v, v.clone()]));
    const fp = evaluate(model, heldOut, FULL_PRECISION);
    const settings: AccuracyRewardSettings = {
      kind: 'accuracy', formula: ACCURACY_REWARD_FORMULA, model: o.model, from: o.from ?? null,
      steps: Math.ceil(finetuneSet.count / hyper.batchSize), batch_size: hyper.batchSize, lr: hyper.lr,
      finetune_images: finetuneSet.count, finetune_seed: o.seed, holdout: heldOut.count, holdout_split_seed: HOLDOUT_SPLIT_SEED,
      dataset: data.name, backend, fp_top1: fp.top1,
    };
    // the agent shares the tfjs backend ('wasm' under mpq's native kernels); settings keep mpq's name for it
    return new AccuracyReward(tf.getBackend(), problem, model, snapshot, finetuneSet, heldOut, hyper, o.seed, settings, data.test);
  }

  /** Fine-tunes and evaluates a policy (or returns its cached top-1). */
  async score(choice: number[]): Promise<RewardScore> {
    const key = this.bitsKey(choice);
    let top1 = this.cache.get(key);
    const cached = top1 !== undefined;
    if (top1 === undefined) {
      top1 = (await this.finetune(choice)).heldOut;
      this.cache.set(key, top1);
    }
    const signal = SIGNAL_PER_TOP1 * (top1 - this.settings.fp_top1);
    return { reward: top1, layerRewards: choice.map(() => signal), cached };
  }

  /**
   * The fine-tune behind the reward, from the snapshot: top-1 on the held-out images, and on
   * `others` (e.g. the test split, for a benchmark) with the same fine-tuned weights. Not cached.
   */
  async finetune(choice: number[], others: ImageSet[] = []): Promise<{ heldOut: number; others: number[] }> {
    for (const [v, value] of this.snapshot) v.assign(value);
    const policy = this.policy(choice);
    this.fineTunes++;
    const [report] = await trainLoop(this.model, { name: this.settings.dataset, split: 'rl reward', numClasses: this.model.numClasses, train: this.finetuneSet, test: this.heldOut }, {
      stage: 'finetune', hyper: this.hyper, seed: this.seed, passes: () => [{ label: 'policy', policy }], evalPolicy: policy, progress: false,
    });
    return { heldOut: report.testTop1, others: others.map((set) => evaluate(this.model, set, policy).top1) };
  }

  /** Fine-tunes run so far (cache misses plus direct finetune calls). */
  get fineTuneCount(): number {
    return this.fineTunes;
  }

  dispose(): void {
    for (const t of this.snapshot.values()) t.dispose();
    disposeModel(this.model);
  }

  private policy(choice: number[]): BitsPolicy {
    return withFixedLayers(this.model, Object.fromEntries(choice.map((j, i) => {
      const c = this.problem.choices[i][j];
      return [this.problem.layerNames[i], { weightBits: c.w, actBits: c.a }];
    })));
  }

  private bitsKey(choice: number[]): string {
    return choice.map((j, i) => `w${this.problem.choices[i][j].w}a${this.problem.choices[i][j].a}`).join(',');
  }
}
