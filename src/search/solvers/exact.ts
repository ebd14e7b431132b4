import type { Problem } from '../problem.js';
import { rowTolerance, type Solution, type SolveOptions, type Solver } from './solver.js';

/**
 * Exact solver for the search's structure: one choice per layer (a multiple-choice knapsack) with
 * a few budget rows. Five steps, each making the next one smaller:
 * 1. drop choices another choice of the same layer dominates (no more cost, no more use);
 * 2. Lagrange multipliers λ for the rows (the LP dual), which give every choice a reduced cost
 *    and order the layers: the layers whose best choice wins by the widest margin go first;
 * 3. a short depth-first dive in reduced-cost order for an incumbent (small cases end here,
 *    proven);
 * 4. single and pair swaps that improve the incumbent;
 * 5. sweeps layer by layer over partial policies (cost, use per row), keeping those that no other
 *    partial policy dominates and whose LP bound stays below a cutoff; cutoffs start close to the
 *    root bound and widen until a sweep finds a policy, which is then optimal. Depth-first search
 *    alone re-explores the subtrees of dominated partial policies: on ResNet-50 W3A4/CR12.2 it
 *    needs ~10^6 nodes against ~10^4 partial policies here.
 * Bounds: per row e, the LP relaxation of the remaining layers with row e exact and the other rows
 * priced by λ, precomputed per depth as a function of the budget left (a table lookup a node).
 * Measured on a 1,000-point ResNet-50 sweep: more multipliers per bound keep 5–13% fewer partial
 * policies, other layer orders 4–20x more; what decides the work is the cutoff (step 5).
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
  /** per row k, the choices in order of use */
  byUse: Int32Array[];
}

/** Nodes the dive may spend before the sweep takes over. */
const DIVE_NODES = 2048;
/**
 * The narrowed sweeps' cutoffs: at 1/WIDENING_START of the incumbent's distance from the root
 * bound, then WIDENING times farther each (0.4, 0.64, then the incumbent). Chosen on a 1,000-point
 * ResNet-50 sweep: 3.85M partial policies in all against 8.1M without narrowing (4.0M for 1/4 and
 * 1.5x, 4.7M for 1/4 and 2x), and 11.9k on W3A4/CR12.2, where the incumbent is already optimal
 * (8.4k without narrowing, 16.8k for 1/4 and 1.5x).
 */
const WIDENING_START = 2.5;
const WIDENING = 1.6;
/** Nodes the dive may spend once it has an incumbent: the swaps improve it more cheaply. */
const DIVE_NODES_AFTER_INCUMBENT = 256;

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

  const kept = undominatedChoices(problem.choices);
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
    const order = orderBy((t) => rcOf[t], m);
    const idx = new Array<number>(m), cost = new Float64Array(m), rc = new Float64Array(m), use = new Float64Array(m * K);
    const rank = new Int32Array(m);
    for (let r = 0; r < m; r++) {
      const t = order[r];
      rank[t] = r;
      idx[r] = L.idx[t]; cost[r] = L.cost[t]; rc[r] = rcOf[t];
      for (let k = 0; k < K; k++) use[r * K + k] = L.use[t * K + k];
    }
    const byUse = L.byUse.map((o) => {
      const mapped = new Int32Array(m);
      for (let r = 0; r < m; r++) mapped[r] = rank[o[r]];
      return mapped;
    });
    return { layer: L.layer, idx, cost, rc, use, byUse };
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
  // Each row on its own: if even the least use of every layer overflows, no policy exists.
  for (let k = 0; k < K; k++) if (suffixUse[k] > slack[k]) return done('infeasible', null, { nodes: 0 });
  const rootBound = suffixRc[0] - sumLambda;
  const lpBounds = problem.rows.map((_, e) => new SuffixLpBound(layers, K, e, lambda.map((x, k) => (k === e ? 0 : x))));
  const setupMs = performance.now() - t0;

  const search = new ExactSearch(layers, K, limits, slack, lambda, sumLambda, suffixRc, suffixUse, lpBounds, deadline);
  const stopped = search.run();
  const stats = { nodes: search.nodes, states: search.states, sweeps: search.sweeps, rootBound, setupMs };
  const timedOut = stopped === 'time';
  const found = search.bestPick;
  if (!found) return done(timedOut ? 'time_limit' : 'infeasible', null, stats);
  const choice = new Array<number>(n);
  layers.forEach((L, d) => (choice[L.layer] = L.idx[found[d]]));
  return done(timedOut ? 'time_limit' : 'optimal', choice, stats);
}

/**
 * Steps 3–5 on the prepared layers. A class rather than closures in solveExact: its methods are
 * the same functions in every solve, so code the JIT optimised for one solve serves the next.
 */
class ExactSearch {
  private readonly n: number;
  private readonly rootBound: number;
  best = Infinity;
  /** improvements below rounding level are not improvements (keeps the first optimum found) */
  private cutoff = Infinity;
  bestPick: Int32Array | null = null;
  nodes = 0;
  private nodesSinceIncumbent = 0;
  states = 0;
  sweeps = 0;
  private stopped: 'budget' | 'time' | null = null;
  // the dive's path
  private readonly pick: Int32Array;
  private readonly used: Float64Array;
  // the sweep's path back: per depth, each kept state's parent and choice
  private readonly parents: Int32Array[] = [];
  private readonly picks: Int32Array[] = [];

  constructor(
    private readonly layers: LayerData[], private readonly K: number,
    private readonly limits: Float64Array, private readonly slack: Float64Array,
    private readonly lambda: number[], private readonly sumLambda: number,
    private readonly suffixRc: Float64Array, private readonly suffixUse: Float64Array,
    private readonly lpBounds: SuffixLpBound[], private readonly deadline: number,
  ) {
    this.n = layers.length;
    this.rootBound = suffixRc[0] - sumLambda;
    this.pick = new Int32Array(this.n);
    this.used = new Float64Array(K);
  }

  /** Dive, swaps, sweeps: null when proven optimal (or infeasible), 'time' when out of time. */
  run(): 'time' | null {
    this.dive(0, 0, 0);
    if (this.stopped !== 'budget') return this.stopped;
    if (this.bestPick) {
      // the closer the incumbent to the optimum, the fewer partial policies the sweep keeps
      // (ResNet-50 W3A4/CR12.2: 14k from the dive's incumbent, 8.6k after the swaps)
      const pick = this.bestPick.slice();
      const cost = improveBySwaps(this.layers, this.K, this.slack, pick, this.best, this.cutoff - this.rootBound);
      if (cost < this.cutoff) this.record(cost, pick);
    }
    return this.sweepWidening() ? null : 'time';
  }

  private record(cost: number, pick: Int32Array) {
    this.best = cost;
    this.cutoff = cost - 1e-12 * Math.max(1, Math.abs(cost));
    this.bestPick = pick;
  }

  /**
   * Whether no policy completing a partial policy at depth d with this cost and use can beat the
   * cutoff, by any per-row LP bound. A boolean, not the bound: a double returned from a call that
   * is not inlined is boxed, and this runs for every child.
   */
  private pruned(d: number, costSum: number, use: Float64Array, at: number): boolean {
    const { K, limits, lambda, lpBounds, cutoff } = this;
    for (let e = 0; e < K; e++) {
      let others = 0;
      for (let k = 0; k < K; k++) if (k !== e) others += lambda[k] * (limits[k] - use[at + k]);
      if (lpBounds[e].exceeds(d, limits[e] - use[at + e], cutoff - costSum + others)) return true;
    }
    return false;
  }

  /** Step 3: depth-first in reduced-cost order, for an incumbent; stops at its node budget. */
  private dive(d: number, rcSum: number, costSum: number): void {
    const { K, used, suffixUse, slack } = this;
    if (d === this.n) {
      if (costSum < this.cutoff) this.record(costSum, this.pick.slice());
      return;
    }
    const L = this.layers[d];
    const rest = this.suffixRc[d + 1] - this.sumLambda;
    const next = (d + 1) * K;
    for (let t = 0; t < L.idx.length; t++) {
      const rc = rcSum + L.rc[t];
      if (rc + rest >= this.cutoff) break; // sorted by reduced cost: no later child does better
      let fits = true;
      for (let k = 0; k < K; k++) {
        if (used[k] + L.use[t * K + k] + suffixUse[next + k] > slack[k]) { fits = false; break; }
      }
      if (!fits) continue;
      if (++this.nodes >= DIVE_NODES || (this.bestPick && ++this.nodesSinceIncumbent >= DIVE_NODES_AFTER_INCUMBENT)) {
        this.stopped = 'budget';
        return;
      }
      for (let k = 0; k < K; k++) used[k] += L.use[t * K + k];
      const cost = costSum + L.cost[t];
      if (!this.pruned(d + 1, cost, used, 0)) {
        this.pick[d] = t;
        this.dive(d + 1, rc, cost);
      }
      for (let k = 0; k < K; k++) used[k] -= L.use[t * K + k];
      if (this.stopped) return;
    }
  }

  /**
   * Step 5, one sweep over partial policies, depth by depth, keeping those no other dominates and
   * whose bound is below the cutoff. False when the time ran out.
   */
  private sweep(): boolean {
    const { n, K, layers, suffixRc, suffixUse, slack, parents, picks } = this;
    const { levels, kids } = sweepBuffers(K);
    let from = levels[0], to = levels[1];
    from.clear();
    from.push(0, 0, -1, -1);
    parents.length = 0;
    picks.length = 0;
    for (let d = 0; d < n && from.size > 0; d++) {
      if (performance.now() > this.deadline) return false;
      const cutoff = this.cutoff;
      const L = layers[d];
      const m = L.idx.length;
      const rest = suffixRc[d + 1] - this.sumLambda;
      const next = (d + 1) * K;
      kids.start(m);
      for (let s = 0; s < from.size; s++) {
        const rcBase = from.rc[s], costBase = from.cost[s];
        for (let t = 0; t < m; t++) {
          const rc = rcBase + L.rc[t];
          if (rc + rest >= cutoff) break;
          const slot = kids.reserve(), at = slot * K;
          let fits = true;
          for (let k = 0; k < K; k++) {
            const u = (kids.use[at + k] = from.use[s * K + k] + L.use[t * K + k]);
            if (u + suffixUse[next + k] > slack[k]) { fits = false; break; }
          }
          if (!fits) continue;
          const c = costBase + L.cost[t];
          if (this.pruned(d + 1, c, kids.use, at)) continue;
          kids.cost[slot] = c; kids.rc[slot] = rc;
          kids.commit(s, t);
        }
      }
      kids.keepNondominated(to);
      this.states += to.size;
      parents.push(to.parent.slice(0, to.size));
      picks.push(to.pick.slice(0, to.size));
      [from, to] = [to, from];
    }
    if (parents.length < n) return true;
    let q = -1;
    for (let s = 0; s < from.size; s++) if (from.cost[s] < this.cutoff && (q < 0 || from.cost[s] < from.cost[q])) q = s;
    if (q >= 0) {
      const path = new Int32Array(n);
      const c = from.cost[q];
      for (let d = n - 1; d >= 0; d--) { path[d] = picks[d][q]; q = parents[d][q]; }
      this.record(c, path);
    }
    return true;
  }

  /**
   * The sweep keeps every partial policy whose bound is below the cutoff, and their number grows
   * steeply with the cutoff's distance from the root bound (about its 3.3th power on ResNet-50).
   * The incumbent may sit far farther from the bound than the optimum (on some sweep points 1.7x
   * the distance, 20x the partial policies). So sweep first with cutoffs closer to the root
   * bound, then wider: the first sweep that finds a policy has found the optimum, since it kept
   * every partial policy that could complete below its cutoff.
   */
  private sweepWidening(): boolean {
    const { rootBound } = this;
    if (this.bestPick) {
      const incumbent = this.cutoff;
      const found = this.best;
      for (let gap = (incumbent - rootBound) / WIDENING_START; rootBound + gap < incumbent; gap *= WIDENING) {
        this.cutoff = rootBound + gap;
        this.sweeps++;
        if (!this.sweep()) return false;
        if (this.best < found) return true;
      }
      this.cutoff = incumbent;
    }
    this.sweeps++;
    return this.sweep();
  }
}

/**
 * Improve a complete policy by moving one layer, or two at once, to another choice whose reduced
 * cost is within `gap` of the layer's best (no better policy uses any other), while it stays
 * within every row and gets cheaper; until no such move helps. Changes `pick`, returns its cost.
 */
function improveBySwaps(layers: LayerData[], K: number, slack: Float64Array, pick: Int32Array, cost: number, gap: number): number {
  const n = layers.length;
  const used = new Float64Array(K), delta = new Float64Array(K);
  for (let d = 0; d < n; d++) for (let k = 0; k < K; k++) used[k] += layers[d].use[pick[d] * K + k];
  // choices are in reduced-cost order, so each layer's candidates are a prefix
  const candidates = layers.map((L) => {
    let m = 1;
    while (m < L.rc.length && L.rc[m] - L.rc[0] <= gap) m++;
    return m;
  });
  const fits = (extra: Float64Array) => {
    for (let k = 0; k < K; k++) if (used[k] + extra[k] > slack[k]) return false;
    return true;
  };
  const move = (d: number, t: number) => {
    const L = layers[d];
    for (let k = 0; k < K; k++) used[k] += L.use[t * K + k] - L.use[pick[d] * K + k];
    cost += L.cost[t] - L.cost[pick[d]];
    pick[d] = t;
  };
  for (let round = 0, improved = true; improved && round < 16; round++) {
    improved = false;
    for (let i = 0; i < n; i++) {
      const Li = layers[i];
      for (let ti = 0; ti < candidates[i]; ti++) {
        if (ti === pick[i]) continue;
        const saved = Li.cost[pick[i]] - Li.cost[ti];
        for (let k = 0; k < K; k++) delta[k] = Li.use[ti * K + k] - Li.use[pick[i] * K + k];
        if (saved > 0 && fits(delta)) { move(i, ti); improved = true; continue; }
        for (let j = i + 1; j < n; j++) {
          const Lj = layers[j];
          for (let tj = 0; tj < candidates[j]; tj++) {
            if (tj === pick[j] || saved + Lj.cost[pick[j]] - Lj.cost[tj] <= 0) continue;
            let ok = true;
            for (let k = 0; k < K && ok; k++) ok = used[k] + delta[k] + Lj.use[tj * K + k] - Lj.use[pick[j] * K + k] <= slack[k];
            if (ok) { move(i, ti); move(j, tj); improved = true; break; }
          }
          if (pick[i] === ti) break;
        }
      }
    }
  }
  return cost;
}

/**
 * A capacity of at least `atLeast`, doubling from `size`. The buffers below grow rarely and stay
 * grown: they are reused from solve to solve (see `sweepBuffers`).
 */
function capacity(size: number, atLeast: number): number {
  while (size < atLeast) size *= 2;
  return size;
}

/** Copies of typed arrays with a larger capacity (one function per type keeps calls monomorphic). */
function growF64(a: Float64Array<ArrayBuffer>, atLeast: number): Float64Array<ArrayBuffer> {
  const b = new Float64Array(capacity(a.length, atLeast));
  b.set(a);
  return b;
}

function growI32(a: Int32Array<ArrayBuffer>, atLeast: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(capacity(a.length, atLeast));
  b.set(a);
  return b;
}

/** The sweep's buffers for K rows, kept for the next solve (a sweep solves hundreds). */
let buffers: { levels: [Level, Level]; kids: Children } | null = null;
function sweepBuffers(K: number): { levels: [Level, Level]; kids: Children } {
  if (buffers?.kids.K !== K) buffers = { levels: [new Level(K), new Level(K)], kids: new Children(K) };
  return buffers;
}

/** Starting capacity in partial policies: ResNet-50 W3A4/CR12.2 needs ~2,500 a depth. */
const INITIAL_STATES = 4096;

/**
 * One depth's partial policies in growable typed arrays, in lexicographic order of (use per row,
 * cost): cost, reduced cost, use per row, and the parent state and choice they came from (to
 * read the policy back).
 */
class Level {
  size = 0;
  cost = new Float64Array(INITIAL_STATES);
  rc = new Float64Array(INITIAL_STATES);
  use: Float64Array<ArrayBuffer>;
  parent = new Int32Array(INITIAL_STATES);
  pick = new Int32Array(INITIAL_STATES);

  constructor(readonly K: number) {
    this.use = new Float64Array(INITIAL_STATES * K);
  }

  clear() { this.size = 0; }

  ensure(n: number) {
    if (n <= this.cost.length) return;
    this.cost = growF64(this.cost, n); this.rc = growF64(this.rc, n); this.use = growF64(this.use, n * this.K);
    this.parent = growI32(this.parent, n); this.pick = growI32(this.pick, n);
  }

  push(cost: number, rc: number, parent: number, pick: number) {
    this.ensure(this.size + 1);
    const i = this.size++;
    this.cost[i] = cost; this.rc[i] = rc; this.parent[i] = parent; this.pick[i] = pick;
    this.use.fill(0, i * this.K, (i + 1) * this.K);
  }
}

/**
 * The children of one depth's partial policies, in the order they were made (parent by parent).
 * Parents are in lexicographic order, so the children of one choice t are too: grouping them by
 * t gives sorted runs, and merging the runs orders all children without a sort.
 */
class Children extends Level {
  /** children per choice, then run starts */
  private runs = new Int32Array(64);
  private order = new Int32Array(INITIAL_STATES);
  private scratch = new Int32Array(INITIAL_STATES);
  private stairUse = new Float64Array(INITIAL_STATES);
  private stairCost = new Float64Array(INITIAL_STATES);
  private choices = 0;

  /** Begin a depth whose layer has this many choices. */
  start(choices: number) {
    this.size = 0;
    this.choices = choices;
    if (this.runs.length < choices + 1) this.runs = new Int32Array(choices + 1);
    this.runs.fill(0, 0, choices + 1);
  }

  /** slot for the next child (its use, cost and reduced cost are written before commit) */
  reserve(): number {
    this.ensure(this.size + 1);
    return this.size;
  }

  /** Keep the reserved slot. Integers only: doubles passed to a call that is not inlined are boxed. */
  commit(parent: number, pick: number) {
    const i = this.size++;
    this.parent[i] = parent; this.pick[i] = pick;
    this.runs[pick + 1]++;
  }

  /** a before b: less use row by row, then less cost, then made first */
  private before(a: number, b: number): boolean {
    const { use, K } = this;
    for (let k = 0; k < K; k++) {
      const d = use[a * K + k] - use[b * K + k];
      if (d !== 0) return d < 0;
    }
    const d = this.cost[a] - this.cost[b];
    return d !== 0 ? d < 0 : a < b;
  }

  /** Children in lexicographic order: group by choice (sorted runs), then merge runs pairwise. */
  private sorted(choices: number): Int32Array {
    const m = this.size;
    if (this.order.length < m) { this.order = growI32(this.order, m); this.scratch = new Int32Array(this.order.length); }
    const runs = this.runs;
    // runs[t + 1] holds the count of choice t: prefix sums give where each run starts
    const starts: number[] = [0];
    for (let t = 1; t <= choices; t++) {
      runs[t] += runs[t - 1];
      if (runs[t] > starts[starts.length - 1]) starts.push(runs[t]);
    }
    let src = this.order, dst = this.scratch;
    const fill = runs.slice(0, choices);
    for (let i = 0; i < m; i++) src[fill[this.pick[i]]++] = i;
    let bounds = starts;
    while (bounds.length > 2) {
      const merged: number[] = [0];
      for (let r = 0; r + 1 < bounds.length; r += 2) {
        const lo = bounds[r], mid = bounds[r + 1], hi = r + 2 < bounds.length ? bounds[r + 2] : mid;
        let i = lo, j = mid, o = lo;
        while (i < mid && j < hi) dst[o++] = this.before(src[j], src[i]) ? src[j++] : src[i++];
        while (i < mid) dst[o++] = src[i++];
        while (j < hi) dst[o++] = src[j++];
        merged.push(hi);
      }
      [src, dst] = [dst, src];
      bounds = merged;
    }
    return src;
  }

  /**
   * Write into `to` the children no other child dominates (no more cost, no more use in every
   * row; of equal ones the first), in lexicographic order.
   */
  keepNondominated(to: Level) {
    const { K, cost, use } = this;
    const m = this.size;
    to.clear();
    if (m === 0) return;
    const order = this.sorted(this.choices);
    to.ensure(m);
    const keep = (i: number) => {
      const q = to.size++;
      to.cost[q] = cost[i]; to.rc[q] = this.rc[i]; to.parent[q] = this.parent[i]; to.pick[q] = this.pick[i];
      for (let k = 0; k < K; k++) to.use[q * K + k] = use[i * K + k];
    };
    if (K === 1) {
      let least = Infinity;
      for (let r = 0; r < m; r++) { const i = order[r]; if (cost[i] < least) { keep(i); least = cost[i]; } }
    } else if (K === 2) {
      // In first-row order, a child is dominated when an earlier one has no more second-row use
      // and no more cost: the staircase of earlier children's (second-row use, cost), cost falling.
      if (this.stairUse.length < m) { this.stairUse = growF64(this.stairUse, m); this.stairCost = new Float64Array(this.stairUse.length); }
      const su = this.stairUse, sc = this.stairCost;
      let h = 0;
      for (let r = 0; r < m; r++) {
        const i = order[r];
        const v = use[i * 2 + 1], c = cost[i];
        let lo = 0, hi = h; // first step with use > v
        while (lo < hi) { const mid = (lo + hi) >> 1; if (su[mid] <= v) lo = mid + 1; else hi = mid; }
        if (lo > 0 && sc[lo - 1] <= c) continue;
        keep(i);
        // steps from lo on with cost ≥ c are now dominated by this child
        let q = lo;
        while (q < h && sc[q] >= c) q++;
        // shifts are short (a dozen steps on ResNet-50): plain loops beat copyWithin's call cost
        if (q === lo) {
          for (let x = h; x > lo; x--) { su[x] = su[x - 1]; sc[x] = sc[x - 1]; }
          h++;
        } else if (q > lo + 1) {
          const gap = q - lo - 1;
          for (let x = q; x < h; x++) { su[x - gap] = su[x]; sc[x - gap] = sc[x]; }
          h -= gap;
        }
        su[lo] = v; sc[lo] = c;
      }
    } else {
      // three or more rows (latency tables): pairwise against the survivors so far
      for (let r = 0; r < m; r++) {
        const i = order[r];
        let dominated = false;
        for (let p = 0; p < to.size && !dominated; p++) {
          if (to.cost[p] > cost[i]) continue;
          let le = true;
          for (let k = 0; k < K && le; k++) le = to.use[p * K + k] <= use[i * K + k];
          dominated = le;
        }
        if (!dominated) keep(i);
      }
    }
  }
}

/**
 * Each layer's undominated choices, kept per choices array: a sweep's points share one (only their
 * limits differ), and this is a fifth of a ResNet-50 solve's setup.
 */
const keptByChoices = new WeakMap<Problem['choices'], KeptChoices[]>();
function undominatedChoices(choices: Problem['choices']): KeptChoices[] {
  let kept = keptByChoices.get(choices);
  if (!kept) keptByChoices.set(choices, (kept = choices.map((cs, i) => undominated(cs, i))));
  return kept;
}

/** A layer's choices that no other choice of the layer dominates, as typed arrays. */
interface KeptChoices {
  layer: number;
  /** original choice indices */
  idx: number[];
  cost: Float64Array;
  /** use[t * K + k] */
  use: Float64Array;
  /** per row k, the choices in order of use (byUse[k][r] is the r-th least) */
  byUse: Int32Array[];
}

/**
 * Indices 0..m-1 in order of key (ties: lower index first), by insertion: m is a layer's
 * choice count, small enough that this beats a comparator sort.
 */
function orderBy(key: (t: number) => number, m: number): Int32Array {
  const order = new Int32Array(m);
  for (let t = 0; t < m; t++) {
    const v = key(t);
    let r = t;
    while (r > 0 && key(order[r - 1]) > v) { order[r] = order[r - 1]; r--; }
    order[r] = t;
  }
  return order;
}

/**
 * The choices no other choice dominates (no more cost and no more use in every row). Of identical
 * choices the first is kept, so results do not depend on solver internals.
 */
function undominated(choices: Problem['choices'][number], layer: number): KeptChoices {
  const m = choices.length;
  const K = choices[0]?.use.length ?? 0;
  const cost = new Float64Array(m), use = new Float64Array(m * K);
  for (let j = 0; j < m; j++) {
    cost[j] = choices[j].cost;
    for (let k = 0; k < K; k++) use[j * K + k] = choices[j].use[k];
  }
  const idx: number[] = [];
  for (let j = 0; j < m; j++) {
    let dominated = false;
    for (let q = 0; q < m && !dominated; q++) {
      if (q === j || cost[q] > cost[j]) continue;
      let le = true, strict = cost[q] < cost[j];
      for (let k = 0; k < K; k++) {
        const dq = use[q * K + k], dj = use[j * K + k];
        if (dq > dj) { le = false; break; }
        if (dq < dj) strict = true;
      }
      dominated = le && (strict || q < j);
    }
    if (!dominated) idx.push(j);
  }
  const kept = idx.length;
  const keptCost = new Float64Array(kept), keptUse = new Float64Array(kept * K);
  for (let t = 0; t < kept; t++) {
    keptCost[t] = cost[idx[t]];
    for (let k = 0; k < K; k++) keptUse[t * K + k] = use[idx[t] * K + k];
  }
  const byUse: Int32Array[] = [];
  for (let k = 0; k < K; k++) byUse.push(orderBy((t) => keptUse[t * K + k], kept));
  return { layer, idx, cost: keptCost, use: keptUse, byUse };
}

/**
 * The lower convex hull of the points (u[p], c[p]), visited in `byUse` order (use ascending):
 * written to `hull` from the least-use point, its size returned. Of points with equal use only
 * the cheapest counts.
 */
function lowerHull(u: Float64Array, c: Float64Array, byUse: Int32Array, hull: Int32Array): number {
  let h = 0;
  for (let r = 0; r < byUse.length; r++) {
    const p = byUse[r];
    if (h && u[hull[h - 1]] === u[p]) {
      if (c[p] >= c[hull[h - 1]]) continue;
      h--;
    }
    while (h >= 2) {
      const a = hull[h - 2], b = hull[h - 1];
      if ((c[b] - c[a]) * (u[p] - u[a]) >= (c[p] - c[a]) * (u[b] - u[a])) h--;
      else break;
    }
    hull[h++] = p;
  }
  return h;
}

/** The first hull point of least cost: where the hull stops saving cost as use grows. */
function cheapestOnHull(c: Float64Array, hull: Int32Array, h: number): number {
  let top = 0;
  for (let x = 1; x < h; x++) if (c[hull[x]] < c[hull[top]]) top = x;
  return top;
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
  readonly hull: Int32Array;
  readonly events: Int32Array;
  constructor(events: number, choices: number) {
    this.events = new Int32Array(events);
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
  const { u, base, hull } = w;
  for (const L of kept) {
    const m = L.cost.length;
    for (let t = 0; t < m; t++) {
      let b = L.cost[t];
      for (let r = 0; r < K; r++) if (r !== k) b += lambda[r] * L.use[t * K + r] * scale[r];
      u[t] = L.use[t * K + k] * scale[k];
      base[t] = b;
    }
    const h = lowerHull(u, base, L.byUse[k], hull);
    // the envelope at t = 0 sits at the hull point of least base (least u among ties: it wins just after 0)
    const top = cheapestOnHull(base, hull, h);
    slope += u[hull[top]];
    for (let x = top; x > 0; x--) {
      const p = hull[x], q = hull[x - 1];
      w.eventT[events] = (base[q] - base[p]) / (u[p] - u[q]);
      w.eventDrop[events++] = u[p] - u[q];
    }
  }
  if (slope <= 0) return 0;
  return weightedQuantile(w.eventT, w.eventDrop, events, slope, w.events);
}

/**
 * The least t[e] such that the drops of the events up to it (in order of t) sum to at least
 * `need`; the largest t when they never do, 0 without events. Quickselect: linear on average,
 * where sorting the events was most of the multipliers' time.
 */
function weightedQuantile(t: Float64Array, drop: Float64Array, n: number, need: number, idx: Int32Array): number {
  if (n === 0) return 0;
  for (let e = 0; e < n; e++) idx[e] = e;
  let lo = 0, hi = n, largest = -Infinity;
  for (let e = 0; e < n; e++) largest = Math.max(largest, t[e]);
  while (lo < hi) {
    const pivot = t[idx[(lo + hi) >> 1]];
    // three-way partition of idx[lo, hi) into t < pivot, t = pivot, t > pivot
    let lt = lo, i = lo, gt = hi;
    let below = 0, equal = 0;
    while (i < gt) {
      const e = idx[i], v = t[e];
      if (v < pivot) { idx[i] = idx[lt]; idx[lt++] = e; below += drop[e]; i++; }
      else if (v > pivot) { idx[i] = idx[--gt]; idx[gt] = e; }
      else { equal += drop[e]; i++; }
    }
    if (below >= need) hi = lt;
    else if (below + equal >= need) return pivot;
    else { need -= below + equal; lo = gt; }
  }
  return largest;
}

/** Lookup cells per depth in SuffixLpBound. */
const CELLS = 64;

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
  /** cells per unit of use */
  private readonly cellScale: Float64Array;
  private readonly cellStart: Int32Array;

  constructor(layers: LayerData[], K: number, readonly row: number, readonly lambda: number[]) {
    // Three phases, each its own function: a constructor holding all three loops was optimised
    // on-stack in the first and deoptimised in the next on every solve (90 times in 20 solves).
    const n = layers.length;
    const segments = hullSegments(layers, K, row, lambda);
    this.baseCost = segments.baseCost;
    this.baseUse = segments.baseUse;
    this.offset = new Int32Array(n + 1);
    this.count = new Int32Array(n + 1);
    let total = 0;
    for (let d = n; d >= 0; d--) {
      this.count[d] = d < n ? this.count[d + 1] + segments.perDepth[d] : 0;
      this.offset[d] = total;
      total += this.count[d] + 1;
    }
    this.prefUse = new Float64Array(total);
    this.prefCost = new Float64Array(total);
    this.slopes = new Float64Array(total);
    suffixPrefixSums(segments, n, this.offset, this.count, this.prefUse, this.prefCost, this.slopes);
    this.cellScale = new Float64Array(n + 1);
    this.cellStart = new Int32Array((n + 1) * CELLS);
    cellStarts(n, this.offset, this.count, this.prefUse, this.cellScale, this.cellStart);
  }

  /**
   * Whether the LP bound for depth d with R units of the row left is at least `level` (always when
   * even the least use exceeds R).
   */
  exceeds(d: number, R: number, level: number): boolean {
    const free = R - this.baseUse[d];
    if (free < -rowTolerance(R)) return true;
    const off = this.offset[d], m = this.count[d];
    const pu = this.prefUse;
    if (free >= pu[off + m]) return this.baseCost[d] + this.prefCost[off + m] >= level;
    // largest p with pu[p] <= free, walking from the start of free's cell
    let lo = free > 0 ? this.cellStart[d * CELLS + ((free * this.cellScale[d]) | 0)] : 0;
    while (lo < m && pu[off + lo + 1] <= free) lo++;
    return this.baseCost[d] + this.prefCost[off + lo] + Math.max(0, free - pu[off + lo]) * this.slopes[off + lo] >= level;
  }
}

/** Per layer from the last, the LP's hull segments for one row: use step, cost step, slope. */
interface HullSegments {
  baseCost: Float64Array;
  baseUse: Float64Array;
  du: number[];
  dc: number[];
  slope: number[];
  /** segments of the layer at each depth */
  perDepth: Int32Array;
}

function hullSegments(layers: LayerData[], K: number, row: number, lambda: number[]): HullSegments {
  const n = layers.length;
  const baseCost = new Float64Array(n + 1), baseUse = new Float64Array(n + 1);
  const du: number[] = [], dc: number[] = [], slope: number[] = [];
  const perDepth = new Int32Array(n);
  const maxChoices = Math.max(...layers.map((L) => L.idx.length));
  const u = new Float64Array(maxChoices), c = new Float64Array(maxChoices), hull = new Int32Array(maxChoices);
  for (let d = n - 1; d >= 0; d--) {
    const L = layers[d];
    const m = L.idx.length;
    for (let t = 0; t < m; t++) {
      u[t] = L.use[t * K + row];
      let v = L.cost[t];
      for (let k = 0; k < K; k++) v += lambda[k] * L.use[t * K + k];
      c[t] = v;
    }
    // the LP walks the hull from the least-use point while cost still falls
    const last = cheapestOnHull(c, hull, lowerHull(u, c, L.byUse[row], hull));
    baseCost[d] = baseCost[d + 1] + c[hull[0]];
    baseUse[d] = baseUse[d + 1] + u[hull[0]];
    for (let h = 1; h <= last; h++) {
      const p = hull[h], q = hull[h - 1];
      du.push(u[p] - u[q]); dc.push(c[p] - c[q]);
      slope.push((c[p] - c[q]) / (u[p] - u[q]));
    }
    perDepth[d] = last;
  }
  return { baseCost, baseUse, du, dc, slope, perDepth };
}

/**
 * Per depth d, the segments of layers d.. in order of slope, as prefix sums of use and cost from
 * offset[d]. Segments were pushed layer by layer from the last, each layer's in order of slope (a
 * convex hull), so layer d's sit at [count[d+1], count[d]) and depth d's list is depth d+1's with
 * layer d's merged in: no sort needed.
 */
function suffixPrefixSums(
  { du, dc, slope }: HullSegments, n: number, offset: Int32Array, count: Int32Array,
  pu: Float64Array, pc: Float64Array, sl: Float64Array,
): void {
  let list = new Int32Array(slope.length), merged = new Int32Array(slope.length);
  let size = 0;
  for (let d = n; d >= 0; d--) {
    if (d < n) {
      const lo = count[d + 1], hi = count[d];
      let i = 0, j = lo, o = 0;
      while (i < size && j < hi) merged[o++] = slope[list[i]] <= slope[j] ? list[i++] : j++;
      while (i < size) merged[o++] = list[i++];
      while (j < hi) merged[o++] = j++;
      [list, merged] = [merged, list];
      size = o;
    }
    let at = offset[d];
    pu[at] = 0; pc[at] = 0;
    for (let r = 0; r < size; r++, at++) {
      const i = list[r];
      sl[at] = slope[i];
      pu[at + 1] = pu[at] + du[i];
      pc[at + 1] = pc[at] + dc[i];
    }
  }
}

/**
 * Per depth, cells of equal use: where the walk along the segments starts for a budget in that
 * cell, so a lookup is a few steps instead of a binary search.
 */
function cellStarts(n: number, offset: Int32Array, count: Int32Array, prefUse: Float64Array, cellScale: Float64Array, cellStart: Int32Array): void {
  for (let d = 0; d <= n; d++) {
    const off = offset[d], m = count[d];
    const width = prefUse[off + m] / CELLS;
    cellScale[d] = width > 0 ? 1 / width : 0;
    let p = 0;
    for (let c = 0; c < CELLS; c++) {
      while (p < m && prefUse[off + p + 1] <= c * width) p++;
      cellStart[d * CELLS + c] = p;
    }
  }
}
