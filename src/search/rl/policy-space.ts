import type { Problem } from '../problem.js';
import { rowTolerance } from '../solvers/solver.js';

/** Overshoot below this (a fraction of a row's largest total) is rounding, not a move's effect. */
const MIN_GAIN = 1e-13;

/**
 * The agent's view of a Problem: how a continuous action becomes a choice, and the "action wall"
 * that moves any policy onto the budgets before it is scored.
 *
 * Action → choice: each layer's choices are ordered by normalised resource use (Σ over rows of
 * use / the row's largest reachable total, so rows weigh alike whatever their unit) and an
 * action a ∈ [0, 1] picks the choice at quantile a of that order: index ⌊a·m⌋ (m choices, a = 1
 * gives the last). Low actions are frugal, high actions generous, as HAQ's bit range.
 */
export class PolicySpace {
  readonly layers: number;
  /** per layer: indices into problem.choices[i], by normalised resource use, ascending */
  readonly order: number[][];
  private readonly limits: number[];
  private readonly tolerances: number[];
  /** per row: the largest total use any policy reaches, the yardstick of "normalised" */
  private readonly scales: number[];

  constructor(readonly problem: Problem) {
    this.layers = problem.choices.length;
    this.limits = problem.rows.map((r) => r.limit);
    this.tolerances = this.limits.map(rowTolerance);
    this.scales = problem.rows.map((_, k) => {
      const largest = problem.choices.reduce((s, cs) => s + Math.max(...cs.map((c) => c.use[k])), 0);
      return largest > 0 ? largest : 1;
    });
    this.order = problem.choices.map((cs) => cs.map((_, j) => j).sort((x, y) => this.normUse(cs[x].use) - this.normUse(cs[y].use) || cs[x].cost - cs[y].cost));
  }

  choiceForAction(layer: number, action: number): number {
    const order = this.order[layer];
    return order[Math.min(order.length - 1, Math.max(0, Math.floor(action * order.length)))];
  }

  /** Σ over rows of the budget's overshoot, normalised: 0 exactly when every row is within its limit. */
  overshoot(use: number[]): number {
    let v = 0;
    for (let k = 0; k < use.length; k++) {
      const over = use[k] - this.limits[k] - this.tolerances[k];
      if (over > 0) v += over / this.scales[k];
    }
    return v;
  }

  /**
   * Proof of infeasibility from each row alone: even the least use of every layer overflows it.
   * (When rows pull apart, e.g. a latency table against size, the problem can be infeasible with
   * every row reachable alone; the search then simply finds no policy.)
   */
  rowAloneInfeasible(): boolean {
    return this.limits.some((limit, k) =>
      this.problem.choices.reduce((s, cs) => s + Math.min(...cs.map((c) => c.use[k])), 0) > limit + this.tolerances[k]);
  }

  use(choice: number[]): number[] {
    const use = this.limits.map(() => 0);
    choice.forEach((j, i) => this.problem.choices[i][j].use.forEach((u, k) => (use[k] += u)));
    return use;
  }

  objective(choice: number[]): number {
    return choice.reduce((s, j, i) => s + this.problem.choices[i][j].cost, 0);
  }

  /**
   * The action wall, in place: while a row is over its limit, make the move (one layer to another
   * of its choices) that removes the most overshoot per unit of objective increase; free moves
   * (objective no worse) first. Returns whether the policy ended within every budget; false means
   * no single move reduces the overshoot any more, which cannot happen when each layer has a
   * choice least in every row (BitOps and size always do).
   */
  project(choice: number[]): boolean {
    let use = this.use(choice);
    let v = this.overshoot(use);
    const eps = this.costEpsilon();
    while (v > 0) {
      let best = -Infinity, bestLayer = -1, bestChoice = -1;
      for (let i = 0; i < this.layers; i++) {
        const cs = this.problem.choices[i];
        const cur = cs[choice[i]];
        for (let j = 0; j < cs.length; j++) {
          if (j === choice[i]) continue;
          const after = use.map((u, k) => u - cur.use[k] + cs[j].use[k]);
          const gain = v - this.overshoot(after);
          if (gain <= MIN_GAIN) continue;
          const score = gain / Math.max(cs[j].cost - cur.cost, eps);
          if (score > best) [best, bestLayer, bestChoice] = [score, i, j];
        }
      }
      if (bestLayer < 0) return false;
      choice[bestLayer] = bestChoice;
      use = this.use(choice); // recomputed, not updated, so rounding never drifts past a limit
      v = this.overshoot(use);
    }
    return true;
  }

  /**
   * Spend the budget left, in place, on a feasible policy: repeatedly make the move that lowers
   * the objective most per unit of extra use, rows weighted by how little slack they have left,
   * among the moves that keep every row within its limit (no tolerance used up here).
   */
  upgrade(choice: number[]): void {
    let use = this.use(choice);
    for (;;) {
      const slack = use.map((u, k) => Math.max(this.limits[k] - u, 1e-12 * this.scales[k]));
      let best = 0, bestLayer = -1, bestChoice = -1;
      for (let i = 0; i < this.layers; i++) {
        const cs = this.problem.choices[i];
        const cur = cs[choice[i]];
        for (let j = 0; j < cs.length; j++) {
          const saving = cur.cost - cs[j].cost;
          if (saving <= 0) continue;
          let extra = 0, fits = true;
          for (let k = 0; k < use.length && fits; k++) {
            const delta = cs[j].use[k] - cur.use[k];
            if (delta > 0 && use[k] + delta > this.limits[k]) fits = false;
            extra += Math.max(0, delta) / slack[k];
          }
          if (!fits) continue;
          const score = saving / Math.max(extra, 1e-12);
          if (score > best) [best, bestLayer, bestChoice] = [score, i, j];
        }
      }
      if (bestLayer < 0) return;
      choice[bestLayer] = bestChoice;
      use = this.use(choice);
    }
  }

  /** The objective with every layer at its cheapest choice, budgets aside: the reward's unit. */
  unconstrainedObjective(): number {
    return this.problem.choices.reduce((s, cs) => s + Math.min(...cs.map((c) => c.cost)), 0);
  }

  private normUse(use: number[]): number {
    return use.reduce((s, u, k) => s + u / this.scales[k], 0);
  }

  private costEpsilon(): number {
    const mean = this.unconstrainedObjective() / Math.max(1, this.layers);
    return 1e-9 * Math.max(Math.abs(mean), 1e-12);
  }
}
