import * as tf from '@tensorflow/tfjs';
import { Prng } from '../../util/prng.js';

export interface DdpgConfig {
  stateSize: number;
  /** units in each of the two hidden layers (HAQ: 300 and 400; our state is 9 numbers, and tfjs-cpu matMul is slow) */
  hidden: number;
  actorLr: number;
  criticLr: number;
  /** discount of later layers' rewards */
  gamma: number;
  /** soft-update rate of the target networks */
  tau: number;
  batchSize: number;
  bufferSize: number;
  seed: number;
  /**
   * tfjs backend the networks run on: 'cpu' by default (tiny networks: pure-JS kernels beat any
   * setup cost); the backend already in use when the process also trains (one backend per process).
   */
  backend?: string;
}

export const DDPG_DEFAULTS: Omit<DdpgConfig, 'stateSize' | 'seed'> = {
  hidden: 32, actorLr: 1e-3, criticLr: 1e-3, gamma: 0.99, tau: 0.01, batchSize: 64, bufferSize: 100_000,
};

/** A two-hidden-layer ReLU perceptron on raw variables, initialised from our seeded PRNG (Glorot uniform). */
class Mlp {
  readonly vars: tf.Variable[];

  constructor(sizes: number[], rng: Prng) {
    this.vars = [];
    for (let l = 0; l + 1 < sizes.length; l++) {
      const [fanIn, fanOut] = [sizes[l], sizes[l + 1]];
      const bound = Math.sqrt(6 / (fanIn + fanOut));
      const w = Float32Array.from({ length: fanIn * fanOut }, () => (2 * rng.next() - 1) * bound);
      this.vars.push(tf.variable(tf.tensor2d(w, [fanIn, fanOut])), tf.variable(tf.zeros([fanOut])));
    }
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    let h = x;
    for (let l = 0; l < this.vars.length; l += 2) {
      h = tf.add(tf.matMul(h, this.vars[l] as tf.Tensor2D), this.vars[l + 1]);
      if (l + 2 < this.vars.length) h = tf.relu(h);
    }
    return h;
  }

  copyFrom(source: Mlp): void {
    this.vars.forEach((v, i) => v.assign(source.vars[i]));
  }

  /** θ' ← τθ + (1 − τ)θ' */
  softUpdate(source: Mlp, tau: number): void {
    tf.tidy(() => this.vars.forEach((v, i) => v.assign(tf.add(tf.mul(source.vars[i], tau), tf.mul(v, 1 - tau)))));
  }

  dispose(): void {
    this.vars.forEach((v) => v.dispose());
  }
}

/** Transitions (s, a, r, s', done) in flat ring buffers; the oldest are overwritten when full. */
class ReplayBuffer {
  private readonly states: Float32Array;
  private readonly next: Float32Array;
  private readonly actions: Float32Array;
  private readonly rewards: Float32Array;
  private readonly notDone: Float32Array;
  private size = 0;
  private head = 0;

  constructor(private readonly capacity: number, private readonly stateSize: number) {
    this.states = new Float32Array(capacity * stateSize);
    this.next = new Float32Array(capacity * stateSize);
    this.actions = new Float32Array(capacity);
    this.rewards = new Float32Array(capacity);
    this.notDone = new Float32Array(capacity);
  }

  get length(): number {
    return this.size;
  }

  add(s: number[], a: number, r: number, s2: number[], done: boolean): void {
    const i = this.head;
    this.states.set(s, i * this.stateSize);
    this.next.set(s2, i * this.stateSize);
    this.actions[i] = a;
    this.rewards[i] = r;
    this.notDone[i] = done ? 0 : 1;
    this.head = (this.head + 1) % this.capacity;
    this.size = Math.min(this.size + 1, this.capacity);
  }

  sample(n: number, rng: Prng) {
    const d = this.stateSize;
    const s = new Float32Array(n * d), s2 = new Float32Array(n * d);
    const a = new Float32Array(n), r = new Float32Array(n), notDone = new Float32Array(n);
    for (let b = 0; b < n; b++) {
      const i = rng.int(this.size);
      s.set(this.states.subarray(i * d, (i + 1) * d), b * d);
      s2.set(this.next.subarray(i * d, (i + 1) * d), b * d);
      a[b] = this.actions[i];
      r[b] = this.rewards[i];
      notDone[b] = this.notDone[i];
    }
    return { s, s2, a, r, notDone };
  }
}

/**
 * DDPG (Lillicrap et al.) with one continuous action in [0, 1]: an actor μ(s) (sigmoid output), a
 * critic Q(s, a), a target copy of each moved by soft updates, and a replay buffer.
 */
export class DdpgAgent {
  private readonly actor: Mlp;
  private readonly critic: Mlp;
  private readonly actorTarget: Mlp;
  private readonly criticTarget: Mlp;
  private readonly actorOpt: tf.Optimizer;
  private readonly criticOpt: tf.Optimizer;
  private readonly buffer: ReplayBuffer;
  private readonly rng: Prng;

  private constructor(private readonly cfg: DdpgConfig) {
    this.rng = new Prng(cfg.seed);
    const actorSizes = [cfg.stateSize, cfg.hidden, cfg.hidden, 1];
    const criticSizes = [cfg.stateSize + 1, cfg.hidden, cfg.hidden, 1];
    this.actor = new Mlp(actorSizes, this.rng);
    this.critic = new Mlp(criticSizes, this.rng);
    this.actorTarget = new Mlp(actorSizes, this.rng);
    this.criticTarget = new Mlp(criticSizes, this.rng);
    this.actorTarget.copyFrom(this.actor);
    this.criticTarget.copyFrom(this.critic);
    this.actorOpt = tf.train.adam(cfg.actorLr);
    this.criticOpt = tf.train.adam(cfg.criticLr);
    this.buffer = new ReplayBuffer(cfg.bufferSize, cfg.stateSize);
  }

  static async create(cfg: DdpgConfig): Promise<DdpgAgent> {
    const backend = cfg.backend ?? 'cpu';
    if (!(await tf.setBackend(backend))) throw new Error(`rl: tfjs backend '${backend}' failed to start`);
    await tf.ready();
    // The cpu backend's first tensor prints "install our node backend" on stderr, beside our
    // progress bar: no advice for networks this small, so it is written with the check off.
    const isNode = tf.env().get('IS_NODE');
    tf.env().set('IS_NODE', false);
    try {
      tf.tensor([0]).dispose();
    } finally {
      tf.env().set('IS_NODE', isNode);
    }
    return new DdpgAgent(cfg);
  }

  /** μ(s), the greedy action (exploration noise is the caller's) */
  act(state: number[]): number {
    return tf.tidy(() => tf.sigmoid(this.actor.apply(tf.tensor2d([state]))).dataSync()[0]);
  }

  observe(s: number[], a: number, r: number, s2: number[], done: boolean): void {
    this.buffer.add(s, a, r, s2, done);
  }

  get transitions(): number {
    return this.buffer.length;
  }

  /** One gradient step on a replayed batch for the critic, then the actor, then soft target updates. */
  update(): void {
    const n = this.cfg.batchSize, d = this.cfg.stateSize;
    const batch = this.buffer.sample(n, this.rng);
    tf.tidy(() => {
      const s = tf.tensor2d(batch.s, [n, d]);
      const s2 = tf.tensor2d(batch.s2, [n, d]);
      const a = tf.tensor2d(batch.a, [n, 1]);
      // y = r + γ (1 − done) Q'(s', μ'(s'))
      const nextQ = this.criticTarget.apply(tf.concat([s2, tf.sigmoid(this.actorTarget.apply(s2))], 1));
      const y = tf.add(tf.tensor2d(batch.r, [n, 1]), tf.mul(tf.tensor2d(batch.notDone, [n, 1]), tf.mul(nextQ, this.cfg.gamma)));
      this.criticOpt.minimize(() => tf.losses.meanSquaredError(y, this.critic.apply(tf.concat([s, a], 1))) as tf.Scalar, false, this.critic.vars);
      this.actorOpt.minimize(() => tf.neg(tf.mean(this.critic.apply(tf.concat([s, tf.sigmoid(this.actor.apply(s))], 1)))) as tf.Scalar, false, this.actor.vars);
    });
    this.actorTarget.softUpdate(this.actor, this.cfg.tau);
    this.criticTarget.softUpdate(this.critic, this.cfg.tau);
  }

  dispose(): void {
    for (const net of [this.actor, this.critic, this.actorTarget, this.criticTarget]) net.dispose();
    this.actorOpt.dispose();
    this.criticOpt.dispose();
  }
}
