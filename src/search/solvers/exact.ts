import type { Problem } from '../problem.js';
import { rowTolerance, type Solution, type SolveOptions, type Solver } from './solver.js';

/**
 * Exact solver for the search's structure: one choice per layer (a multiple-choice knapsack) with
 * a few budget rows. Four steps, each making the next one smaller:
 * 1. drop choices another choice of the same layer dominates (no more cost, no more use);
 * 2. Lagrange multipliers λ for the rows (the LP dual), which give every choice a reduced cost
 *    and order the layers: the layers whose best choice wins by the widest margin go first;
 * 3. a short depth-first dive in reduced-cost order for a good incumbent (small cases end here,
 *    proven);
 * 4. a sweep layer by layer over partial policies (cost, use per row), keeping those that no other
 *    partial policy dominates and whose LP bound can still beat the incumbent. Depth-first search
 *    alone re-explores the subtrees of dominated partial policies: on ResNet-50 W3A4/CR12.2 it
 *    needs ~10^6 nodes against ~2·10^4 partial policies here.
 * Bounds: per row e, the LP relaxation of the remaining layers with row e exact and the other rows
 * priced by λ, precomputed per depth as a function of the budget left (one binary search a node).
 */
export const exactSolver: Solver = {
  name: 'exact',
  async solve(problem, opts) {
    return solveExact(problem, opts);
  },
};

/** A layer's surviving choices, sorted by reduced cost. */
interface LayerData {
  /** index of the layer in the problem */
  layer: number;
  /** original choice indices */
  idx: number[];
  cost: Float64Array;
  rc: Float64Array;
  /** use[t * K + k] */
  use: Float64Array;
}

/** Nodes the dive may spend before the sweep takes over. */
const DIVE_NODES = 2048;

export function solveExact(problem: Problem, opts: SolveOptions = {}): Solution {
  const t0 = performance.now();
  const n = problem.choices.length;
  const K = problem.rows.length;
  const limits = Float64Array.from(problem.rows, (r) => r.limit);
  const slack = Float64Array.from(limits, (l) => l + rowTolerance(l));
  const deadline = opts.timeLimitMs === undefined ? Infinity : t0 + opts.timeLimitMs;
  const done = (status: Solution['status'], choice: number[] | null, stats: Record<string, number>): Solution => ({
    status, choice, solver: 'exact', solveMs: performance.now() - t0, stats,
  });

  const kept = problem.choices.map((cs, i) => undominated(cs, i));
  // Each row on its own: if even the smallest use per layer overflows, no policy exists.
  for (let k = 0; k < K; k++) {
    let least = 0;
    for (const L of kept) {
      let lo = Infinity;
      for (let t = 0; t < L.cost.length; t++) lo = Math.min(lo, L.use[t * K + k]);
      least += lo;
    }
    if (least > slack[k]) return done('infeasible', null, { nodes: 0 });
  }
  if (n === 0) return done('optimal', [], { nodes: 0 });

  // Rows normalised by their limits so multipliers are comparable across rows.
  const scale = Float64Array.from(limits, (l) => (l > 0 ? 1 / l : 1));
  const lambda = lagrangeMultipliers(kept, K, scale, limits).map((x, k) => x * scale[k]);
  let sumLambda = 0;
  for (let k = 0; k < K; k++) sumLambda += lambda[k] * limits[k];

  const layers: LayerData[] = kept.map((L) => {
    const m = L.cost.length;
    const rcOf = new Float64Array(m);
    for (let t = 0; t < m; t++) {
      let v = L.cost[t];
      for (let k = 0; k < K; k++) v += lambda[k] * L.use[t * K + k];
      rcOf[t] = v;
    }
    const order = Array.from({ length: m }, (_, t) => t).sort((a, b) => rcOf[a] - rcOf[b] || L.idx[a] - L.idx[b]);
    const use = new Float64Array(m * K);
    order.forEach((t, r) => { for (let k = 0; k < K; k++) use[r * K + k] = L.use[t * K + k]; });
    return {
      layer: L.layer, idx: order.map((t) => L.idx[t]),
      cost: Float64Array.from(order, (t) => L.cost[t]), rc: Float64Array.from(order, (t) => rcOf[t]), use,
    };
  });
  // Clear decisions first, close calls last, where the bounds of the short suffix are tight.
  const regret = (L: LayerData) => (L.rc.length > 1 ? L.rc[1] - L.rc[0] : Infinity);
  layers.sort((a, b) => regret(b) - regret(a) || a.layer - b.layer);

  // Suffix sums: least reduced cost and least use per row of the layers from depth d on.
  const suffixRc = new Float64Array(n + 1);
  const suffixUse = new Float64Array((n + 1) * K);
  for (let d = n - 1; d >= 0; d--) {
    const L = layers[d];
    suffixRc[d] = suffixRc[d + 1] + L.rc[0];
    for (let k = 0; k < K; k++) {
      let lo = Infinity;
      for (let t = 0; t < L.idx.length; t++) lo = Math.min(lo, L.use[t * K + k]);
      suffixUse[d * K + k] = suffixUse[(d + 1) * K + k] + lo;
    }
  }
  const rootBound = suffixRc[0] - sumLambda;
  const lpBounds = problem.rows.map((_, e) => new SuffixLpBound(layers, K, e, lambda.map((x, k) => (k === e ? 0 : x))));

  let best = Infinity;
  // improvements below rounding level are not improvements (keeps the first optimum found)
  let cutoff = Infinity;
  let bestPick: Int32Array | null = null;
  const record = (cost: number, pick: Int32Array) => {
    best = cost;
    cutoff = best - 1e-12 * Math.max(1, Math.abs(best));
    bestPick = pick;
  };

  /** Can a partial policy at depth d, with this cost and use, still beat the incumbent? */
  const promising = (d: number, costSum: number, use: Float64Array, at: number): boolean => {
    for (let e = 0; e < K; e++) {
      let bound = costSum + lpBounds[e].at(d, limits[e] - use[at + e]);
      for (let k = 0; k < K; k++) if (k !== e) bound -= lambda[k] * (limits[k] - use[at + k]);
      if (bound >= cutoff) return false;
    }
    return true;
  };

  const setupMs = performance.now() - t0;
  // Step 3: the dive.
  const pick = new Int32Array(n);
  const used = new Float64Array(K);
  let nodes = 0;
  let stopped: 'budget' | 'time' | null = null;
  const dive = (d: number, rcSum: number, costSum: number): void => {
    if (d === n) {
      if (costSum < cutoff) record(costSum, pick.slice());
      return;
    }
    const L = layers[d];
    const rest = suffixRc[d + 1] - sumLambda;
    const next = (d + 1) * K;
    for (let t = 0; t < L.idx.length; t++) {
      const rc = rcSum + L.rc[t];
      if (rc + rest >= cutoff) break; // sorted by reduced cost: no later child does better
      let fits = true;
      for (let k = 0; k < K; k++) {
        if (used[k] + L.use[t * K + k] + suffixUse[next + k] > slack[k]) { fits = false; break; }
      }
      if (!fits) continue;
      if (++nodes >= DIVE_NODES) { stopped = 'budget'; return; }
      for (let k = 0; k < K; k++) used[k] += L.use[t * K + k];
      const cost = costSum + L.cost[t];
      if (promising(d + 1, cost, used, 0)) {
        pick[d] = t;
        dive(d + 1, rc, cost);
      }
      for (let k = 0; k < K; k++) used[k] -= L.use[t * K + k];
      if (stopped) return;
    }
  };
  dive(0, 0, 0);

  /**
   * Step 4: the sweep over partial policies, depth by depth, keeping those no other dominates and
   * whose bound can still beat the incumbent. False when the time ran out.
   */
  let states = 0;
  const cur = new StateBuffer(K), nxt = new StateBuffer(K);
  const parents: Int32Array[] = [];
  const picks: Int32Array[] = [];
  const sweep = (): boolean => {
    let from = cur, to = nxt;
    from.clear();
    from.push(0, 0, -1, -1);
    parents.length = 0;
    picks.length = 0;
    for (let d = 0; d < n && from.size > 0; d++) {
      if (performance.now() > deadline) return false;
      const L = layers[d];
      const m = L.idx.length;
      const rest = suffixRc[d + 1] - sumLambda;
      const next = (d + 1) * K;
      to.clear();
      for (let s = 0; s < from.size; s++) {
        const rcBase = from.rc[s], costBase = from.cost[s];
        for (let t = 0; t < m; t++) {
          const rc = rcBase + L.rc[t];
          if (rc + rest >= cutoff) break;
          const at = to.reserve() * K;
          let fits = true;
          for (let k = 0; k < K; k++) {
            const u = (to.use[at + k] = from.use[s * K + k] + L.use[t * K + k]);
            if (u + suffixUse[next + k] > slack[k]) { fits = false; break; }
          }
          if (!fits) continue;
          const c = costBase + L.cost[t];
          if (!promising(d + 1, c, to.use, at)) continue;
          to.commit(c, rc, s, t);
        }
      }
      to.keepNondominated();
      states += to.size;
      parents.push(to.parent.slice(0, to.size));
      picks.push(to.pick.slice(0, to.size));
      [from, to] = [to, from];
    }
    if (parents.length < n) return true;
    let q = -1;
    for (let s = 0; s < from.size; s++) if (from.cost[s] < cutoff && (q < 0 || from.cost[s] < from.cost[q])) q = s;
    if (q >= 0) {
      const path = new Int32Array(n);
      const c = from.cost[q];
      for (let d = n - 1; d >= 0; d--) { path[d] = picks[d][q]; q = parents[d][q]; }
      record(c, path);
    }
    return true;
  };
  if (stopped === 'budget') stopped = sweep() ? null : 'time';

  const stats = { nodes, states, rootBound, setupMs };
  const timedOut = stopped === 'time';
  if (!bestPick) return done(timedOut ? 'time_limit' : 'infeasible', null, stats);
  const found: Int32Array = bestPick;
  const choice = new Array<number>(n);
  layers.forEach((L, d) => (choice[L.layer] = L.idx[found[d]]));
  return done(timedOut ? 'time_limit' : 'optimal', choice, stats);
}

/**
 * One depth's partial policies in growable typed arrays: cost, reduced cost, use per row,
 * and the parent state and choice they came from (to read the policy back).
 */
class StateBuffer {
  size = 0;
  cost = new Float64Array(1024);
  rc = new Float64Array(1024);
  use: Float64Array;
  parent = new Int32Array(1024);
  pick = new Int32Array(1024);
  // scratch for keepNondominated
  private order = new Int32Array(1024);
  private stairUse = new Float64Array(1024);
  private stairCost = new Float64Array(1024);

  constructor(readonly K: number) {
    this.use = new Float64Array(1024 * K);
  }

  clear() { this.size = 0; }

  /** slot for the next state (its use is written before commit) */
  reserve(): number {
    if (this.size === this.cost.length) {
      const grow = <T extends Float64Array | Int32Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.cost = grow(this.cost); this.rc = grow(this.rc); this.use = grow(this.use);
      this.parent = grow(this.parent); this.pick = grow(this.pick);
      this.order = grow(this.order); this.stairUse = grow(this.stairUse); this.stairCost = grow(this.stairCost);
    }
    return this.size;
  }

  commit(cost: number, rc: number, parent: number, pick: number) {
    const i = this.size++;
    this.cost[i] = cost; this.rc[i] = rc; this.parent[i] = parent; this.pick[i] = pick;
  }

  push(cost: number, rc: number, parent: number, pick: number) {
    const at = this.reserve() * this.K;
    this.use.fill(0, at, at + this.K);
    this.commit(cost, rc, parent, pick);
  }

  /**
   * Keep the states no other state dominates (no more cost, no more use in every row; of equal
   * ones the first), in order of use.
   */
  keepNondominated() {
    const { K, cost, use } = this;
    const m = this.size;
    const order = orderByFirstRow(cost, use, m, K, this.order);
    let kept = 0;
    if (K === 1) {
      let least = Infinity;
      for (let r = 0; r < m; r++) { const i = order[r]; if (cost[i] < least) { order[kept++] = i; least = cost[i]; } }
    } else if (K === 2) {
      // In first-row order, a state is dominated when an earlier one has no more second-row use
      // and no more cost: the staircase of earlier states' (second-row use, cost), cost falling.
      const su = this.stairUse, sc = this.stairCost;
      let h = 0;
      for (let r = 0; r < m; r++) {
        const i = order[r];
        const v = use[i * 2 + 1], c = cost[i];
        let lo = 0, hi = h; // first step with use > v
        while (lo < hi) { const mid = (lo + hi) >> 1; if (su[mid] <= v) lo = mid + 1; else hi = mid; }
        if (lo > 0 && sc[lo - 1] <= c) continue;
        order[kept++] = i;
        // steps from lo on with cost ≥ c are now dominated by this state
        let q = lo;
        while (q < h && sc[q] >= c) q++;
        if (q === lo) { su.copyWithin(lo + 1, lo, h); sc.copyWithin(lo + 1, lo, h); h++; }
        else if (q > lo + 1) { su.copyWithin(lo + 1, q, h); sc.copyWithin(lo + 1, q, h); h -= q - lo - 1; }
        su[lo] = v; sc[lo] = c;
      }
    } else {
      // three or more rows (latency tables): pairwise against the survivors so far
      for (let r = 0; r < m; r++) {
        const i = order[r];
        let dominated = false;
        for (let p = 0; p < kept && !dominated; p++) {
          const j = order[p];
          if (cost[j] > cost[i]) continue;
          let le = true;
          for (let k = 0; k < K && le; k++) le = use[j * K + k] <= use[i * K + k];
          dominated = le;
        }
        if (!dominated) order[kept++] = i;
      }
    }
    this.compact(order.subarray(0, kept));
  }

  /** Move the given states (indices, in the order to keep) to the front. */
  private compact(keep: Int32Array) {
    const { K } = this;
    const m = keep.length;
    const cost = new Float64Array(m), rc = new Float64Array(m), use = new Float64Array(m * K);
    const parent = new Int32Array(m), pick = new Int32Array(m);
    for (let q = 0; q < m; q++) {
      const i = keep[q];
      cost[q] = this.cost[i]; rc[q] = this.rc[i]; parent[q] = this.parent[i]; pick[q] = this.pick[i];
      for (let k = 0; k < K; k++) use[q * K + k] = this.use[i * K + k];
    }
    this.cost.set(cost); this.rc.set(rc); this.parent.set(parent); this.pick.set(pick);
    this.use.set(use);
    this.size = m;
  }
}

/**
 * Indices 0..m-1 sorted by use (row by row), then cost. Integer first-row uses (BitOps, size) are
 * packed with the index into one double and sorted natively, several times faster than a
 * comparator sort; only runs of equal first-row use need the comparator.
 */
function orderByFirstRow(cost: Float64Array, use: Float64Array, m: number, K: number, into: Int32Array): Int32Array {
  const order = into.subarray(0, m);
  const keys = new Float64Array(m);
  let packable = m <= 65536;
  for (let i = 0; i < m && packable; i++) {
    const u = use[i * K];
    packable = Number.isInteger(u) && u >= 0 && u < 2 ** 37;
    keys[i] = u * 65536 + i;
  }
  const byRest = (a: number, b: number) => {
    for (let k = 0; k < K; k++) {
      const d = use[a * K + k] - use[b * K + k];
      if (d !== 0) return d;
    }
    return cost[a] - cost[b] || a - b;
  };
  if (!packable) {
    for (let i = 0; i < m; i++) order[i] = i;
    return order.sort(byRest);
  }
  keys.sort();
  for (let i = 0; i < m; i++) order[i] = keys[i] % 65536;
  // equal first-row use (e.g. W3A4 and W4A3): the rest of the order decides who dominates whom
  for (let i = 0; i < m;) {
    let j = i + 1;
    while (j < m && use[order[j] * K] === use[order[i] * K]) j++;
    if (j - i > 1) order.subarray(i, j).sort(byRest);
    i = j;
  }
  return order;
}

/** A layer's choices that no other choice of the layer dominates, as typed arrays. */
interface KeptChoices {
  layer: number;
  /** original choice indices */
  idx: number[];
  cost: Float64Array;
  /** use[t * K + k] */
  use: Float64Array;
}

/**
 * The choices no other choice dominates (no more cost and no more use in every row). Of identical
 * choices the first is kept, so results do not depend on solver internals.
 */
function undominated(choices: Problem['choices'][number], layer: number): KeptChoices {
  const idx: number[] = [];
  for (let j = 0; j < choices.length; j++) {
    const cj = choices[j];
    let dominated = false;
    for (let q = 0; q < choices.length && !dominated; q++) {
      const cq = choices[q];
      if (q === j || cq.cost > cj.cost) continue;
      let le = true, strict = cq.cost < cj.cost;
      for (let k = 0; k < cj.use.length; k++) {
        if (cq.use[k] > cj.use[k]) { le = false; break; }
        if (cq.use[k] < cj.use[k]) strict = true;
      }
      dominated = le && (strict || q < j);
    }
    if (!dominated) idx.push(j);
  }
  const K = choices[0]?.use.length ?? 0;
  const use = new Float64Array(idx.length * K);
  idx.forEach((j, t) => choices[j].use.forEach((u, k) => (use[t * K + k] = u)));
  return { layer, idx, cost: Float64Array.from(idx, (j) => choices[j].cost), use };
}

/**
 * Multipliers λ ≥ 0 for the Lagrangian dual max_λ Σ_i min_j (c_ij + λ·u_ij) − λ·B, by cyclic
 * coordinate ascent with an exact line search per row (for one row this is the LP bound itself).
 * Any λ ≥ 0 gives a valid bound; better λ only makes the search smaller. Rows are scaled by
 * `scale` (λ here prices scaled use).
 */
function lagrangeMultipliers(kept: KeptChoices[], K: number, scale: Float64Array, limits: Float64Array): number[] {
  const lambda = new Float64Array(K);
  const rhs = Float64Array.from(limits, (l, k) => l * scale[k]);
  const maxChoices = Math.max(...kept.map((L) => L.cost.length));
  const work = new LineWork(kept.length * maxChoices, maxChoices);
  let last = -Infinity;
  for (let round = 0; round < 3; round++) {
    for (let k = 0; k < K; k++) lambda[k] = lineMaximum(kept, K, scale, lambda, k, rhs[k], work);
    let value = 0;
    for (let k = 0; k < K; k++) value -= lambda[k] * rhs[k];
    for (const L of kept) {
      let m = Infinity;
      for (let t = 0; t < L.cost.length; t++) {
        let v = L.cost[t];
        for (let k = 0; k < K; k++) v += lambda[k] * L.use[t * K + k] * scale[k];
        if (v < m) m = v;
      }
      value += m;
    }
    if (value <= last + 1e-12 * Math.max(1, Math.abs(value))) break;
    last = value;
  }
  return Array.from(lambda);
}

/** Scratch arrays for lineMaximum, allocated once per solve. */
class LineWork {
  readonly eventT: Float64Array;
  readonly eventDrop: Float64Array;
  readonly u: Float64Array;
  readonly base: Float64Array;
  readonly order: number[] = [];
  readonly hull: Int32Array;
  constructor(events: number, choices: number) {
    this.eventT = new Float64Array(events);
    this.eventDrop = new Float64Array(events);
    this.u = new Float64Array(choices);
    this.base = new Float64Array(choices);
    this.hull = new Int32Array(choices);
  }
}

/**
 * The best λ_k with the other multipliers fixed. Per layer, the minimum over choices of
 * base_j + t·u_j is the lower envelope of lines, whose breakpoints come from the lower convex
 * hull of the points (u_j, base_j). The dual's slope in t is Σ_i u_i(t) − rhs; sweep all
 * breakpoints in order of t until it turns non-positive.
 */
function lineMaximum(kept: KeptChoices[], K: number, scale: Float64Array, lambda: Float64Array, k: number, rhs: number, w: LineWork): number {
  let events = 0;
  let slope = -rhs;
  const { u, base, hull, order } = w;
  for (const L of kept) {
    const m = L.cost.length;
    order.length = m;
    for (let t = 0; t < m; t++) {
      let b = L.cost[t];
      for (let r = 0; r < K; r++) if (r !== k) b += lambda[r] * L.use[t * K + r] * scale[r];
      u[t] = L.use[t * K + k] * scale[k];
      base[t] = b;
      order[t] = t;
    }
    order.sort((p, q) => u[p] - u[q] || base[p] - base[q]);
    // lower hull from the least-use point; keep edges while base still falls
    let h = 0;
    for (const p of order) {
      if (h && u[hull[h - 1]] === u[p]) continue;
      while (h >= 2) {
        const a = hull[h - 2], b = hull[h - 1];
        if ((base[b] - base[a]) * (u[p] - u[a]) >= (base[p] - base[a]) * (u[b] - u[a])) h--;
        else break;
      }
      hull[h++] = p;
    }
    // the envelope at t = 0 sits at the hull point of least base (least u among ties: it wins just after 0)
    let top = 0;
    for (let x = 1; x < h; x++) if (base[hull[x]] < base[hull[top]]) top = x;
    slope += u[hull[top]];
    for (let x = top; x > 0; x--) {
      const p = hull[x], q = hull[x - 1];
      w.eventT[events] = (base[q] - base[p]) / (u[p] - u[q]);
      w.eventDrop[events++] = u[p] - u[q];
    }
  }
  if (slope <= 0) return 0;
  const byT = Array.from({ length: events }, (_, e) => e).sort((a, b) => w.eventT[a] - w.eventT[b]);
  for (const e of byT) {
    slope -= w.eventDrop[e];
    if (slope <= 0) return w.eventT[e];
  }
  return events ? w.eventT[byT[events - 1]] : 0;
}

/**
 * For the layers from depth d on, the LP relaxation of min Σ c'_ij subject to one row
 * Σ u_ij ≤ R, as a function of R (c' = cost plus the other rows priced by λ). Per layer the LP
 * walks the lower convex hull of (use, cost) from its least-use point; over all layers it takes
 * hull segments in order of cost saved per unit of use. Each suffix keeps its segments sorted
 * with prefix sums, so a node's bound is one binary search.
 */
class SuffixLpBound {
  private readonly baseCost: Float64Array;
  private readonly baseUse: Float64Array;
  /** per depth d, from offset[d]: count[d] + 1 prefix sums of use and cost, count[d] slopes */
  private readonly offset: Int32Array;
  private readonly count: Int32Array;
  private readonly prefUse: Float64Array;
  private readonly prefCost: Float64Array;
  private readonly slopes: Float64Array;

  constructor(layers: LayerData[], K: number, readonly row: number, readonly lambda: number[]) {
    const n = layers.length;
    this.baseCost = new Float64Array(n + 1);
    this.baseUse = new Float64Array(n + 1);
    // hull segments of every layer: use step, cost step, slope, depth
    const du: number[] = [], dc: number[] = [], slope: number[] = [], depth: number[] = [];
    const perDepth = new Int32Array(n);
    const hu: number[] = [], hc: number[] = [];
    for (let d = n - 1; d >= 0; d--) {
      const L = layers[d];
      const m = L.idx.length;
      const u = new Float64Array(m), c = new Float64Array(m);
      for (let t = 0; t < m; t++) {
        u[t] = L.use[t * K + row];
        let v = L.cost[t];
        for (let k = 0; k < K; k++) v += lambda[k] * L.use[t * K + k];
        c[t] = v;
      }
      const order = Array.from({ length: m }, (_, t) => t).sort((p, q) => u[p] - u[q] || c[p] - c[q]);
      hu.length = 0; hc.length = 0;
      for (const t of order) {
        const h = hu.length;
        if (h && (hu[h - 1] === u[t] || c[t] >= hc[h - 1])) continue; // only points that save cost
        let top = h;
        while (top >= 2 && (hc[top - 1] - hc[top - 2]) * (u[t] - hu[top - 2]) >= (c[t] - hc[top - 2]) * (hu[top - 1] - hu[top - 2])) top--;
        hu.length = top; hc.length = top;
        hu.push(u[t]); hc.push(c[t]);
      }
      this.baseCost[d] = this.baseCost[d + 1] + hc[0];
      this.baseUse[d] = this.baseUse[d + 1] + hu[0];
      for (let h = 1; h < hu.length; h++) {
        du.push(hu[h] - hu[h - 1]); dc.push(hc[h] - hc[h - 1]);
        slope.push((hc[h] - hc[h - 1]) / (hu[h] - hu[h - 1]));
        depth.push(d);
      }
      perDepth[d] = hu.length - 1;
    }
    const S = slope.length;
    const sorted = Array.from({ length: S }, (_, i) => i).sort((p, q) => slope[p] - slope[q] || p - q);
    this.offset = new Int32Array(n + 1);
    this.count = new Int32Array(n + 1);
    let total = 0;
    for (let d = n; d >= 0; d--) {
      this.count[d] = d < n ? this.count[d + 1] + perDepth[d] : 0;
      this.offset[d] = total;
      total += this.count[d] + 1;
    }
    this.prefUse = new Float64Array(total);
    this.prefCost = new Float64Array(total);
    this.slopes = new Float64Array(total);
    for (let d = 0; d <= n; d++) {
      let at = this.offset[d];
      const pu = this.prefUse, pc = this.prefCost, sl = this.slopes;
      pu[at] = 0; pc[at] = 0;
      for (const i of sorted) {
        if (depth[i] < d) continue;
        sl[at] = slope[i];
        pu[at + 1] = pu[at] + du[i];
        pc[at + 1] = pc[at] + dc[i];
        at++;
      }
    }
  }

  /** LP lower bound for depth d with R units of the row left; +∞ when even the least use exceeds R. */
  at(d: number, R: number): number {
    const free = R - this.baseUse[d];
    if (free < -rowTolerance(R)) return Infinity;
    const off = this.offset[d], m = this.count[d];
    const pu = this.prefUse;
    if (free >= pu[off + m]) return this.baseCost[d] + this.prefCost[off + m];
    let lo = 0, hi = m; // largest p with pu[p] <= free
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (pu[off + mid] <= free) lo = mid; else hi = mid - 1;
    }
    return this.baseCost[d] + this.prefCost[off + lo] + Math.max(0, free - pu[off + lo]) * this.slopes[off + lo];
  }
}
