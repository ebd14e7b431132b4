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
  const limits = problem.rows.map((r) => r.limit);
  const tol = limits.map(rowTolerance);
  const deadline = opts.timeLimitMs === undefined ? Infinity : t0 + opts.timeLimitMs;
  const done = (status: Solution['status'], choice: number[] | null, stats: Record<string, number>): Solution => ({
    status, choice, solver: 'exact', solveMs: performance.now() - t0, stats,
  });

  const kept = problem.choices.map((cs) => undominated(cs.map((c) => c.cost), cs.map((c) => c.use)));
  // Each row on its own: if even the smallest use per layer overflows, no policy exists.
  for (let k = 0; k < K; k++) {
    let least = 0;
    for (let i = 0; i < n; i++) least += Math.min(...kept[i].map((j) => problem.choices[i][j].use[k]));
    if (least > limits[k] + tol[k]) return done('infeasible', null, { nodes: 0 });
  }
  if (n === 0) return done('optimal', [], { nodes: 0 });

  // Rows normalised by their limits so multipliers are comparable across rows.
  const scale = limits.map((l) => (l > 0 ? 1 / l : 1));
  const lambda = lagrangeMultipliers(problem, kept, scale).map((x, k) => x * scale[k]);
  const sumLambda = lambda.reduce((s, x, k) => s + x * limits[k], 0);

  const layers: LayerData[] = kept.map((js, i) => {
    const cs = problem.choices[i];
    const rcOf = (j: number) => cs[j].cost + cs[j].use.reduce((s, u, k) => s + lambda[k] * u, 0);
    const idx = [...js].sort((a, b) => rcOf(a) - rcOf(b) || a - b);
    const use = new Float64Array(idx.length * K);
    idx.forEach((j, t) => cs[j].use.forEach((u, k) => (use[t * K + k] = u)));
    return { layer: i, idx, cost: Float64Array.from(idx, (j) => cs[j].cost), rc: Float64Array.from(idx, rcOf), use };
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
        if (used[k] + L.use[t * K + k] + suffixUse[next + k] > limits[k] + tol[k]) { fits = false; break; }
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

  // Step 4: the sweep over partial policies.
  let states = 0;
  if (stopped === 'budget') {
    stopped = null;
    let cost = new Float64Array(1), rcs = new Float64Array(1), use = new Float64Array(K);
    const parents: Int32Array[] = [];
    const picks: Int32Array[] = [];
    const cand = new CandidateBuffer(K);
    for (let d = 0; d < n && cost.length > 0; d++) {
      if (performance.now() > deadline) { stopped = 'time'; break; }
      const L = layers[d];
      const rest = suffixRc[d + 1] - sumLambda;
      const next = (d + 1) * K;
      cand.clear();
      for (let s = 0; s < cost.length; s++) {
        for (let t = 0; t < L.idx.length; t++) {
          const rc = rcs[s] + L.rc[t];
          if (rc + rest >= cutoff) break;
          const at = cand.reserve();
          let fits = true;
          for (let k = 0; k < K; k++) {
            const u = (cand.use[at * K + k] = use[s * K + k] + L.use[t * K + k]);
            if (u + suffixUse[next + k] > limits[k] + tol[k]) { fits = false; break; }
          }
          const c = cost[s] + L.cost[t];
          if (!fits || !promising(d + 1, c, cand.use, at * K)) continue;
          cand.commit(c, rc, s, t);
        }
      }
      const keep = nondominated(cand.cost, cand.use, cand.size, K);
      const m = keep.length;
      states += m;
      cost = new Float64Array(m); rcs = new Float64Array(m); use = new Float64Array(m * K);
      const parent = new Int32Array(m), chosen = new Int32Array(m);
      for (let q = 0; q < m; q++) {
        const i = keep[q];
        cost[q] = cand.cost[i]; rcs[q] = cand.rc[i]; parent[q] = cand.parent[i]; chosen[q] = cand.pick[i];
        for (let k = 0; k < K; k++) use[q * K + k] = cand.use[i * K + k];
      }
      parents.push(parent);
      picks.push(chosen);
    }
    if (!stopped && parents.length === n) {
      let q = -1;
      for (let s = 0; s < cost.length; s++) if (cost[s] < cutoff && (q < 0 || cost[s] < cost[q])) q = s;
      if (q >= 0) {
        const path = new Int32Array(n);
        const c = cost[q];
        for (let d = n - 1; d >= 0; d--) { path[d] = picks[d][q]; q = parents[d][q]; }
        record(c, path);
      }
    }
  }

  const stats = { nodes, states, rootBound };
  const timedOut = stopped === 'time';
  if (!bestPick) return done(timedOut ? 'time_limit' : 'infeasible', null, stats);
  const found: Int32Array = bestPick;
  const choice = new Array<number>(n);
  layers.forEach((L, d) => (choice[L.layer] = L.idx[found[d]]));
  return done(timedOut ? 'time_limit' : 'optimal', choice, stats);
}

/** Growable typed arrays for one depth's candidate partial policies. */
class CandidateBuffer {
  size = 0;
  cost = new Float64Array(1024);
  rc = new Float64Array(1024);
  use: Float64Array;
  parent = new Int32Array(1024);
  pick = new Int32Array(1024);
  constructor(K: number) {
    this.use = new Float64Array(1024 * K);
  }
  clear() { this.size = 0; }
  /** slot for the next candidate (its use is written before commit) */
  reserve(): number {
    if (this.size === this.cost.length) {
      const grow = <T extends Float64Array | Int32Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.cost = grow(this.cost); this.rc = grow(this.rc); this.use = grow(this.use);
      this.parent = grow(this.parent); this.pick = grow(this.pick);
    }
    return this.size;
  }
  commit(cost: number, rc: number, parent: number, pick: number) {
    const i = this.size++;
    this.cost[i] = cost; this.rc[i] = rc; this.parent[i] = parent; this.pick[i] = pick;
  }
}

/**
 * Indices of the partial policies (cost, use per row) that no other one dominates. For up to two
 * rows: sort by the first row, then a state survives when no earlier state has both less
 * second-row use and less cost (prefix minimum over second-row ranks, a Fenwick tree).
 */
function nondominated(cost: Float64Array, use: Float64Array, m: number, K: number): number[] {
  const order = orderByFirstRow(cost, use, m, K);
  const keep: number[] = [];
  if (K === 1) {
    let least = Infinity;
    for (const i of order) if (cost[i] < least) { keep.push(i); least = cost[i]; }
    return keep;
  }
  if (K === 2) {
    const second = new Float64Array(m);
    for (let i = 0; i < m; i++) second[i] = use[i * K + 1];
    second.sort();
    const tree = new Float64Array(m + 1).fill(Infinity);
    for (const i of order) {
      // rank of this state's second-row use: first index holding it, plus one
      const v = use[i * K + 1];
      let lo = 0, hi = m - 1;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (second[mid] < v) lo = mid + 1; else hi = mid; }
      const r = lo + 1;
      let least = Infinity;
      for (let x = r; x > 0; x -= x & -x) if (tree[x] < least) least = tree[x];
      if (cost[i] < least) {
        keep.push(i);
        for (let x = r; x <= m; x += x & -x) if (cost[i] < tree[x]) tree[x] = cost[i];
      }
    }
    return keep;
  }
  // three or more rows (latency tables): pairwise against the survivors so far
  for (const i of order) {
    let dominated = false;
    for (const j of keep) {
      if (cost[j] > cost[i]) continue;
      let le = true;
      for (let k = 0; k < K && le; k++) le = use[j * K + k] <= use[i * K + k];
      if (le) { dominated = true; break; }
    }
    if (!dominated) keep.push(i);
  }
  return keep;
}

/**
 * Indices 0..m-1 sorted by use (row by row), then cost. Integer first-row uses (BitOps, size) are
 * packed with the index into one double and sorted natively, several times faster than a
 * comparator sort; only runs of equal first-row use need the comparator.
 */
function orderByFirstRow(cost: Float64Array, use: Float64Array, m: number, K: number): Int32Array {
  const order = new Int32Array(m);
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

/**
 * Indices of the choices no other choice dominates (no more cost and no more use in every row).
 * Of identical choices the first is kept, so results do not depend on solver internals.
 */
function undominated(cost: number[], use: number[][]): number[] {
  const keep: number[] = [];
  for (let j = 0; j < cost.length; j++) {
    let dominated = false;
    for (let q = 0; q < cost.length && !dominated; q++) {
      if (q === j || cost[q] > cost[j]) continue;
      let le = true, strict = cost[q] < cost[j];
      for (let k = 0; k < use[j].length; k++) {
        if (use[q][k] > use[j][k]) { le = false; break; }
        if (use[q][k] < use[j][k]) strict = true;
      }
      dominated = le && (strict || q < j);
    }
    if (!dominated) keep.push(j);
  }
  return keep;
}

/**
 * Multipliers λ ≥ 0 for the Lagrangian dual max_λ Σ_i min_j (c_ij + λ·u_ij) − λ·B, by cyclic
 * coordinate ascent with an exact line search per row (for one row this is the LP bound itself).
 * Any λ ≥ 0 gives a valid bound; better λ only makes the search smaller.
 */
function lagrangeMultipliers(problem: Problem, kept: number[][], scale: number[]): number[] {
  const K = problem.rows.length;
  const lambda = new Array<number>(K).fill(0);
  const rhs = problem.rows.map((r, k) => r.limit * scale[k]);
  let last = -Infinity;
  for (let round = 0; round < 3; round++) {
    for (let k = 0; k < K; k++) lambda[k] = lineMaximum(problem, kept, scale, lambda, k, rhs[k]);
    const value = dualValue(problem, kept, scale, lambda, rhs);
    if (value <= last + 1e-12 * Math.max(1, Math.abs(value))) break;
    last = value;
  }
  return lambda;
}

function dualValue(problem: Problem, kept: number[][], scale: number[], lambda: number[], rhs: number[]): number {
  let v = -lambda.reduce((s, x, k) => s + x * rhs[k], 0);
  kept.forEach((js, i) => {
    let m = Infinity;
    for (const j of js) {
      const c = problem.choices[i][j];
      m = Math.min(m, c.cost + c.use.reduce((s, u, k) => s + lambda[k] * u * scale[k], 0));
    }
    v += m;
  });
  return v;
}

/**
 * The best λ_k with the other multipliers fixed. Per layer, the minimum over choices of
 * base_j + t·u_j is the lower envelope of lines, whose breakpoints come from the lower convex
 * hull of the points (u_j, base_j). The dual's slope in t is Σ_i u_i(t) − rhs; sweep all
 * breakpoints in order of t until it turns non-positive.
 */
function lineMaximum(problem: Problem, kept: number[][], scale: number[], lambda: number[], k: number, rhs: number): number {
  const events: { t: number; drop: number }[] = [];
  let slope = -rhs;
  kept.forEach((js, i) => {
    const pts = js.map((j) => {
      const c = problem.choices[i][j];
      let base = c.cost;
      for (let r = 0; r < lambda.length; r++) if (r !== k) base += lambda[r] * c.use[r] * scale[r];
      return { u: c.use[k] * scale[k], base };
    });
    pts.sort((p, q) => p.u - q.u || p.base - q.base);
    // lower hull from the least-use point; keep edges while base still falls
    const hull: { u: number; base: number }[] = [];
    for (const p of pts) {
      if (hull.length && hull[hull.length - 1].u === p.u) continue;
      while (hull.length >= 2) {
        const a = hull[hull.length - 2], b = hull[hull.length - 1];
        if ((b.base - a.base) * (p.u - a.u) >= (p.base - a.base) * (b.u - a.u)) hull.pop();
        else break;
      }
      hull.push(p);
    }
    // the envelope at t = 0 sits at the hull point of least base (least u among ties: it wins just after 0)
    let top = 0;
    for (let h = 1; h < hull.length; h++) if (hull[h].base < hull[top].base) top = h;
    slope += hull[top].u;
    for (let h = top; h > 0; h--) {
      const p = hull[h], q = hull[h - 1];
      events.push({ t: (q.base - p.base) / (p.u - q.u), drop: p.u - q.u });
    }
  });
  if (slope <= 0) return 0;
  events.sort((a, b) => a.t - b.t);
  for (const e of events) {
    slope -= e.drop;
    if (slope <= 0) return e.t;
  }
  return events.length ? events[events.length - 1].t : 0;
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
