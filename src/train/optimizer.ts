import * as tf from '@tensorflow/tfjs';
import { fusedSgdMomentum } from './backend/native.js';

/** Cosine learning-rate decay from `base` at step 0 to 0 at `total` steps. */
export function cosineLr(base: number, step: number, total: number): number {
  return 0.5 * base * (1 + Math.cos((Math.PI * Math.min(step, total)) / Math.max(total, 1)));
}

/**
 * SGD with momentum and L2 weight decay, as torch.optim.SGD: g ← g + wd·w (decayed variables
 * only), v ← μ·v + g, w ← w − lr·v; one kernel per variable with the native kernels. Written here
 * rather than tf.train.momentum so the learning rate can follow a schedule and the momentum buffers
 * can go into checkpoints.
 */
export class SgdMomentum {
  private readonly velocity = new Map<tf.Variable, tf.Variable>();

  constructor(
    readonly momentum: number,
    readonly weightDecay: number,
    private readonly decayed: ReadonlySet<tf.Variable>,
  ) {}

  /** One update; `grads` maps each variable to its gradient (variables without one are left alone). */
  step(grads: Map<tf.Variable, tf.Tensor>, lr: number): void {
    tf.tidy(() => {
      for (const [variable, grad] of grads) {
        const decay = this.decayed.has(variable) ? this.weightDecay : 0;
        let v = this.velocity.get(variable);
        if (!v) {
          v = tf.variable(tf.zerosLike(variable), false);
          this.velocity.set(variable, v);
        }
        const fused = fusedSgdMomentum(variable, v, grad, { lr, momentum: this.momentum, weightDecay: decay });
        if (fused) {
          variable.assign(fused[0]);
          v.assign(fused[1]);
          continue;
        }
        const g = decay > 0 ? tf.add(grad, tf.mul(variable, decay)) : grad;
        v.assign(tf.add(tf.mul(v, this.momentum), g));
        variable.assign(tf.sub(variable, tf.mul(v, lr)));
      }
    });
  }

  /** Momentum buffers under `<variable name>.momentum_buffer`, for checkpoints. */
  namedState(names: Map<string, tf.Variable>): Map<string, tf.Variable> {
    const state = new Map<string, tf.Variable>();
    for (const [name, variable] of names) {
      const v = this.velocity.get(variable);
      if (v) state.set(`${name}.momentum_buffer`, v);
    }
    return state;
  }

  /** Restores momentum buffers saved by namedState. */
  load(names: Map<string, tf.Variable>, saved: Map<string, tf.Tensor>): void {
    for (const [name, variable] of names) {
      const buffer = saved.get(`${name}.momentum_buffer`);
      if (!buffer) continue;
      this.velocity.get(variable)?.dispose();
      this.velocity.set(variable, tf.variable(buffer, false));
    }
  }

  dispose(): void {
    for (const v of this.velocity.values()) v.dispose();
    this.velocity.clear();
  }
}
