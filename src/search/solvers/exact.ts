import { readFileSync } from 'node:fs';
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
 * Steps 1–2 and the tables are built here; steps 3–5 run in WebAssembly
 * (assembly/exact-search.ts), which needs no JIT warm-up.
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

  const search = searchInWasm(layers, K, limits, slack, lambda, sumLambda, suffixRc, suffixUse, lpBounds, rootBound, deadline);
  const stats = { nodes: search.nodes, states: search.states, sweeps: search.sweeps, rootBound, setupMs };
  const timedOut = search.timedOut;
  const found = search.bestPick;
  if (!found) return done(timedOut ? 'time_limit' : 'infeasible', null, stats);
  const choice = new Array<number>(n);
  layers.forEach((L, d) => (choice[L.layer] = L.idx[found[d]]));
  return done(timedOut ? 'time_limit' : 'optimal', choice, stats);
}

/** The exports of assembly/exact-search.ts (pointers are byte offsets into its memory). */
interface ExactSearchCore {
  memory: WebAssembly.Memory;
  reset(): void;
  alloc(bytes: number): number;
  setProblem(
    depths: number, rows: number, starts: number, rc: number, cost: number, use: number,
    suffixRc: number, suffixUse: number, limits: number, slack: number, lambda: number,
    lambdaSum: number, rootBound: number, deadline: number,
  ): void;
  setLpTable(
    row: number, baseUse: number, baseCost: number, offset: number, count: number,
    prefUse: number, prefCost: number, slopes: number, cellScale: number, cellStart: number,
  ): void;
  run(): number;
  found(): number;
  bestPickPointer(): number;
  nodeCount(): number;
  stateCount(): number;
  sweepCount(): number;
}

let core: ExactSearchCore | null = null;

/** The compiled module, instantiated once per thread (a few milliseconds, then reused). */
function exactSearchCore(): ExactSearchCore {
  if (!core) {
    const module = new WebAssembly.Module(readFileSync(new URL('./exact-search.wasm', import.meta.url)));
    const instance = new WebAssembly.Instance(module, {
      env: {
        now: () => performance.now(),
        abort: () => { throw new Error('exact-search.wasm: internal error'); },
      },
    });
    core = instance.exports as unknown as ExactSearchCore;
  }
  return core;
}

/**
 * Steps 3–5 in WebAssembly: copy the prepared layers (in depth order, choices by reduced cost),
 * suffix sums and LP tables into the module's memory, run, read the best policy back.
 */
function searchInWasm(
  layers: LayerData[], K: number, limits: Float64Array, slack: Float64Array, lambda: number[], sumLambda: number,
  suffixRc: Float64Array, suffixUse: Float64Array, lpBounds: SuffixLpBound[], rootBound: number, deadline: number,
): { bestPick: Int32Array | null; timedOut: boolean; nodes: number; states: number; sweeps: number } {
  const wasm = exactSearchCore();
  const n = layers.length;
  const starts = new Int32Array(n + 1);
  layers.forEach((L, d) => (starts[d + 1] = starts[d] + L.idx.length));
  const total = starts[n];
  const rc = new Float64Array(total), cost = new Float64Array(total), use = new Float64Array(total * K);
  layers.forEach((L, d) => { rc.set(L.rc, starts[d]); cost.set(L.cost, starts[d]); use.set(L.use, starts[d] * K); });
  // Allocate everything first: growing the memory detaches earlier views of it.
  wasm.reset();
  const arrays: Array<Float64Array | Int32Array> = [starts, rc, cost, use, suffixRc, suffixUse, limits, slack, Float64Array.from(lambda)];
  for (const b of lpBounds) arrays.push(...b.tables());
  const at = arrays.map((a) => wasm.alloc(a.byteLength));
  arrays.forEach((a, i) => {
    const view = a instanceof Float64Array ? new Float64Array(wasm.memory.buffer, at[i], a.length) : new Int32Array(wasm.memory.buffer, at[i], a.length);
    view.set(a);
  });
  wasm.setProblem(n, K, at[0], at[1], at[2], at[3], at[4], at[5], at[6], at[7], at[8], sumLambda, rootBound, deadline);
  lpBounds.forEach((_, e) => {
    const t = at.slice(9 + 9 * e, 18 + 9 * e);
    wasm.setLpTable(e, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8]);
  });
  const timedOut = wasm.run() !== 0;
  const bestPick = wasm.found() ? new Int32Array(wasm.memory.buffer, wasm.bestPickPointer(), n).slice() : null;
  return { bestPick, timedOut, nodes: wasm.nodeCount(), states: wasm.stateCount(), sweeps: wasm.sweepCount() };
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

/** Lookup cells per depth in SuffixLpBound (CELLS in assembly/exact-search.ts too). */
const CELLS = 64;

/**
 * For the layers from depth d on, the LP relaxation of min Σ c'_ij subject to one row
 * Σ u_ij ≤ R, as a function of R (c' = cost plus the other rows priced by λ). Per layer the LP
 * walks the lower convex hull of (use, cost) from its least-use point; over all layers it takes
 * hull segments in order of cost saved per unit of use. Each suffix keeps its segments sorted
 * with prefix sums, and cells that say where to start walking them for a given R, so a node's
 * bound is a few steps (assembly/exact-search.ts `exceeds`).
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

  /** The tables, in the order assembly/exact-search.ts setLpTable takes them. */
  tables(): Array<Float64Array | Int32Array> {
    return [this.baseUse, this.baseCost, this.offset, this.count, this.prefUse, this.prefCost, this.slopes, this.cellScale, this.cellStart];
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
