// AssemblyScript, compiled to WebAssembly by the build (asc): the exact solver, on a problem that
// solvers/exact.ts copies into this module's memory (see its comment for the method).
//
// Why WebAssembly: in JavaScript the solver ran ~10x slower in a fresh process than once the JIT
// had optimised it (125 ms against 9 ms on ResNet-50 W3A4/CR12.2), and every sweep worker paid
// that warm-up again. WebAssembly is compiled before it runs. The arithmetic is in the order the
// JavaScript solver used, so results (and the choice among equal optima) did not change.
//
// Memory: a bump allocator, reset by the caller before each solve; no garbage collector. Every
// allocation is checked against a limit set by the caller before it is made: past it the module
// traps with `memoryExhausted` set, and the caller reads the best policy found and the proven bound.

@external("env", "now")
declare function now(): f64;
/** A long solve's progress (exact.ts decides whether to show it): bound and best in the module's cost units. */
@external("env", "progress")
declare function progress(round: i32, depth: i32, depths: i32, states: f64, bound: f64, best: f64): void;

// ---- memory ---------------------------------------------------------------------------------

let heapTop: usize = 0;

/** Forget every allocation (the start of a solve). */
export function reset(): void {
  heapTop = (__heap_base + 15) & ~15;
}

/** The heap's top after the last new choices and their step 1: a solve of the same choices keeps what lies below. */
let keptTop: usize = 0;

/** Forget every allocation but the last choices and their undominated ones (a sweep's points share them). */
export function resetKeepingChoices(): void {
  heapTop = keptTop;
}

/** Bytes the heap may reach (set by the caller; WebAssembly's own limit is 4 GiB). */
let memoryLimit: u64 = 2 << 30;
let outOfMemory = false;

export function setMemoryLimit(bytes: f64): void { memoryLimit = <u64>Math.min(bytes, <f64>0xfff00000); }
/** The last solve stopped because an allocation would have passed the memory limit. */
export function memoryExhausted(): bool { return outOfMemory; }

/** `bytes` of memory for the caller (exact.ts), 16-byte aligned. */
export function alloc(bytes: f64): usize { return take(<u64>bytes); }

/** `bytes` of memory, 16-byte aligned, growing the memory when needed; a trap past the limit. */
function take(bytes: u64): usize {
  if (heapTop == 0) reset();
  const p = (<u64>heapTop + 15) & ~15;
  const end = p + bytes;
  if (end > memoryLimit) {
    outOfMemory = true;
    unreachable();
  }
  const have = (<u64>memory.size()) << 16;
  if (end > have && memory.grow(<i32>((end - have + 0xffff) >> 16)) < 0) {
    outOfMemory = true;
    unreachable();
  }
  heapTop = <usize>end;
  return <usize>p;
}

@inline function f64at(p: usize, i: i32): f64 { return load<f64>(p + ((<usize>i) << 3)); }
@inline function setF64(p: usize, i: i32, v: f64): void { store<f64>(p + ((<usize>i) << 3), v); }
@inline function i32at(p: usize, i: i32): i32 { return load<i32>(p + ((<usize>i) << 2)); }
@inline function setI32(p: usize, i: i32, v: i32): void { store<i32>(p + ((<usize>i) << 2), v); }
@inline function f64s(count: i32): usize { return take((<u64>count) << 3); }
@inline function i32s(count: i32): usize { return take((<u64>count) << 2); }
/** f64[count] of zeros (memory is reused from solve to solve: `alloc` does not clear it) */
function zeros(count: i32): usize {
  const p = f64s(count);
  memory.fill(p, 0, (<usize>count) << 3);
  return p;
}

function growF64(p: usize, size: i32, capacity: i32): usize {
  const q = f64s(capacity);
  memory.copy(q, p, (<usize>size) << 3);
  return q;
}

function growI32(p: usize, size: i32, capacity: i32): usize {
  const q = i32s(capacity);
  memory.copy(q, p, (<usize>size) << 2);
  return q;
}

/** As solvers/solver.ts rowTolerance: rounding-level slack on a row's limit. */
@inline function rowTolerance(limit: f64): f64 { return 1e-12 * Math.max(1, Math.abs(limit)); }

// ---- the problem and its prepared tables ----------------------------------------------------------

/** Nodes the dive may spend in a round before the sweep takes over. */
const DIVE_NODES: i32 = 512;
/** Nodes the dive may spend once it has found a policy: the swaps improve it more cheaply. */
const DIVE_NODES_AFTER_INCUMBENT: i32 = 256;
/**
 * The rounds' cutoffs, at rootBound + δ: δ starts at the FIRST_GAPS-th least reduced-cost gap of a
 * choice (0.1–0.7 of the optimum's distance from the bound on the LLM-like bench tables, 0.09 on
 * ResNet-50 W3A4/CR12.2), or 1/WIDENING_START of the incumbent's distance when smaller, and grows
 * WIDENING times a round, FAST_WIDENING after a round that kept fewer than CHEAP_ROUND partial
 * policies (it was far below). A round's work grows steeply with δ near the optimum, so small
 * steps there; measured on the bench tables (24 LLM-like, ResNet-50) against 1.2–1.6 and 2–20
 * first gaps.
 */
const FIRST_GAPS: i32 = 8;
const WIDENING_START: f64 = 2.5;
const WIDENING: f64 = 1.3;
const FAST_WIDENING: f64 = 2;
const CHEAP_ROUND: f64 = 3000;
/** Lookup cells per depth in the LP tables. */
const CELLS: i32 = 64;
/** Rounds of cutting planes for the multipliers, and the cuts kept. */
const KELLEY_ROUNDS: i32 = 100;
const MAX_CUTS: i32 = 128;
/** Layers up to which the swaps try pairs of moves (quadratic in the layers searched). */
const PAIR_SWAP_LAYERS: i32 = 256;
/** Milliseconds after which a solve reports its progress, and between reports. */
const PROGRESS_AFTER: f64 = 1000;
const PROGRESS_EVERY: f64 = 250;

/** layers of the problem */
let N: i32 = 0;
/** layers the search visits, in search order: the last round's core (see buildView) */
let n: i32 = 0;
let K: i32 = 0;
/** per depth (layers in search order): i32[n + 1] where its choices start in rc, cost, use (times K), keptP */
let choiceStart: usize = 0;
let rcP: usize = 0;
let costP: usize = 0;
let useP: usize = 0;
/** per depth's choice: its index among the layer's undominated choices (from keptStart) */
let keptP: usize = 0;
/** per depth: the layer's index in the problem */
let depthLayer: usize = 0;
/** per row k, i32 pointer: each depth's choices in order of use of row k (indices from choiceStart) */
let byUseP: usize = 0;
/** f64[n + 1] and f64[(n + 1) * K]: least reduced cost and least use per row from depth d on */
let suffixRc: usize = 0;
let suffixUse: usize = 0;
/** the problem's budgets, and with rounding slack */
let problemLimits: usize = 0;
let problemSlack: usize = 0;
/** the searched layers' budgets: the problem's less the fixed layers' use (see buildView) */
let limits: usize = 0;
let slack: usize = 0;
/** the fixed layers' (all but the searched) cost and use per row, and their choice (i32[N], from keptStart) */
let fixedCost: f64 = 0;
let fixedUse: usize = 0;
let fixedKept: usize = 0;
let lambda: usize = 0;
/** λ · limits of the searched layers */
let sumLambda: f64 = 0;
/** the LP bound (the Lagrangian dual's optimum), and what the rounds so far have proven (no policy costs less) */
let rootBound: f64 = 0;
let provenBound: f64 = 0;
/** reduced cost of every undominated choice, each layer's least, and its choices in order of it (byRc) with their ranks */
let rcOf: usize = 0;
let minRc: usize = 0;
let byRc: usize = 0;
let rankRc: usize = 0;
/** rounding slack on reduced-cost gaps (see reducedCosts) */
let gapSlack: f64 = 0;
let deadline: f64 = Infinity;
let started: f64 = 0;
let lastProgress: f64 = 0;
let rounds: i32 = 0;
/** per row, a record of pointers to its LP tables (see lpTable), at these byte offsets */
let lpTables: usize = 0;
const LP_BASE_USE = 0, LP_BASE_COST = 4, LP_OFFSET = 8, LP_COUNT = 12, LP_PREF_USE = 16, LP_PREF_COST = 20,
  LP_SLOPES = 24, LP_CELL_SCALE = 28, LP_CELL_START = 32, LP_GAPS = 36, LP_FROM = 40, LP_BYTES = 44;
@inline function lpTable(e: i32): usize { return lpTables + <usize>(e * LP_BYTES); }
@inline function lpArray(t: usize, field: usize): usize { return <usize>load<u32>(t + field); }
let setupMs: f64 = 0;
/** i32[N]: the best policy's choice of each layer, in problem order (see writeBest) */
let choice: usize = 0;

export function rootBoundValue(): f64 { return rootBound; }
export function provenBoundValue(): f64 { return provenBound; }
export function setupTime(): f64 { return setupMs; }
export function roundCount(): i32 { return rounds; }
export function cuttingPlaneRounds(): i32 { return kelleyRounds; }
export function searchedLayers(): i32 { return n; }
/** The best policy found, as choice indices of the problem (also after a trap), at choicePointer. */
export function writeBest(): void {
  if (!hasBest) return;
  for (let i = 0; i < N; i++) setI32(choice, i, i32at(keptIdx, i32at(keptStart, i) + i32at(bestKept, i)));
}
export function choicePointer(): usize { return choice; }

// ---- search state ------------------------------------------------------------------------------

/** the best policy's cost, and its choice per layer (i32[N], from keptStart) */
let best: f64 = Infinity;
let bestKept: usize = 0;
/** searched layers' cost a policy must stay below (improvements below rounding level are not improvements: keeps the first optimum found) */
let cutoff: f64 = Infinity;
let hasBest = false;
/** the best policy as picks per depth, when found in this round (for the swaps) */
let bestPick: usize = 0;
let foundInRound = false;
let nodes: i32 = 0;
let nodesSinceIncumbent: i32 = 0;
let states: f64 = 0;
let sweeps: i32 = 0;
/** 1 when the dive spent its node budget (else it searched everything: proven) */
let stopped: i32 = 0;
/** the dive's path and use */
let pick: usize = 0;
let used: usize = 0;
/** per depth of the last sweep, each kept state's parent and choice (pointers) */
let parents: usize = 0;
let picks: usize = 0;

export function found(): bool { return hasBest; }
export function nodeCount(): i32 { return nodes; }
export function stateCount(): f64 { return states; }
export function sweepCount(): i32 { return sweeps; }

/** Keep a policy of the searched layers (picks per depth at `from`, cost `cost`) with the fixed ones as the best. */
function record(cost: f64, from: usize): void {
  best = cost + fixedCost;
  cutoff = cost - tolerance(best);
  memory.copy(bestPick, from, (<usize>n) << 2);
  memory.copy(bestKept, fixedKept, (<usize>N) << 2);
  for (let d = 0; d < n; d++) setI32(bestKept, i32at(depthLayer, d), i32at(keptP, i32at(choiceStart, d) + i32at(from, d)));
  hasBest = true;
  foundInRound = true;
}

/** Below this difference two policies' costs are equal: rounding level (costs arrive scaled: the dearest policy costs about 1). */
@inline function tolerance(cost: f64): f64 { return 1e-12 * Math.max(1, Math.abs(cost)); }

// ---- bounds --------------------------------------------------------------------------------------

// Per row, depth d's share of its LP table, read once per depth instead of once per child
// (prepareBounds): f64s at boundF, then i32s (pointers into the tables, and the segment count) at
// boundI, at these indices.
const B_BASE_USE = 0, B_BASE_COST = 1, B_TOTAL_USE = 2, B_TOTAL_COST = 3, B_CELL_SCALE = 4, BOUND_F = 5;
const B_PREF_USE = 0, B_PREF_COST = 1, B_SLOPES = 2, B_CELLS = 3, B_COUNT = 4, B_GAPS = 5, BOUND_I = 6;
let boundF: usize = 0, boundI: usize = 0;

/** Load depth d's part of every row's LP table for `exceeds` (none above the depth the table starts at). */
function prepareBounds(d: i32): void {
  for (let e = 0; e < K; e++) {
    const t = lpTable(e);
    if (d < load<i32>(t, LP_FROM)) {
      setI32(boundI + ((<usize>(e * BOUND_I)) << 2), B_COUNT, -1);
      continue;
    }
    const off = i32at(lpArray(t, LP_OFFSET), d), m = i32at(lpArray(t, LP_COUNT), d);
    const at = (<usize>off) << 3; // the depth's first segment in the f64 arrays
    const pu = lpArray(t, LP_PREF_USE) + at, pc = lpArray(t, LP_PREF_COST) + at;
    const f = boundF + ((<usize>(e * BOUND_F)) << 3), i = boundI + ((<usize>(e * BOUND_I)) << 2);
    setF64(f, B_BASE_USE, f64at(lpArray(t, LP_BASE_USE), d));
    setF64(f, B_BASE_COST, f64at(lpArray(t, LP_BASE_COST), d));
    setF64(f, B_TOTAL_USE, f64at(pu, m));
    setF64(f, B_TOTAL_COST, f64at(pc, m));
    setF64(f, B_CELL_SCALE, f64at(lpArray(t, LP_CELL_SCALE), d));
    setI32(i, B_PREF_USE, <i32>pu);
    setI32(i, B_PREF_COST, <i32>pc);
    setI32(i, B_SLOPES, <i32>(lpArray(t, LP_SLOPES) + at));
    setI32(i, B_CELLS, <i32>(lpArray(t, LP_CELL_START) + ((<usize>(d * CELLS)) << 2)));
    setI32(i, B_COUNT, m);
    setI32(i, B_GAPS, <i32>(lpArray(t, LP_GAPS) + at));
  }
}

/**
 * Whether row e's bound, at the depth `prepareBounds` loaded, with R units of the row left is at
 * least `level` (always when even the least use exceeds R). First the LP bound; where it does not
 * reach `level` and the LP takes a hull segment of some layer only in part, that layer either
 * stops before the segment, takes it whole, or takes a choice between its ends, which lies above
 * the segment by at least the segment's gap: each case has its own bound, and the least of them
 * bounds every policy (as Martello and Toth's bound for the knapsack). On ResNet-50 W3A4/CR12.2
 * the sweeps keep 7,300 partial policies instead of 11,900.
 */
function exceeds(e: i32, R: f64, level: f64): bool {
  const f = boundF + ((<usize>(e * BOUND_F)) << 3), i = boundI + ((<usize>(e * BOUND_I)) << 2);
  const m = i32at(i, B_COUNT);
  if (m < 0) return false; // no table at this depth (see buildLpTable)
  const free = R - f64at(f, B_BASE_USE);
  if (free < -rowTolerance(R)) return true;
  const baseCost = f64at(f, B_BASE_COST), totalUse = f64at(f, B_TOTAL_USE);
  if (free >= totalUse) return baseCost + f64at(f, B_TOTAL_COST) >= level;
  const pu = <usize>i32at(i, B_PREF_USE), pc = <usize>i32at(i, B_PREF_COST), sl = <usize>i32at(i, B_SLOPES);
  // largest p with pu[p] <= free, walking from the start of free's cell
  let lo = 0;
  if (free > 0) lo = i32at(<usize>i32at(i, B_CELLS), <i32>(free * f64at(f, B_CELL_SCALE)));
  while (lo < m && f64at(pu, lo + 1) <= free) lo++;
  const part = free - f64at(pu, lo);
  const lp = baseCost + f64at(pc, lo) + Math.max(0, part) * f64at(sl, lo);
  if (lp >= level) return true;
  if (part <= 0) return false; // no segment taken in part: nothing to split
  if (lp + f64at(<usize>i32at(i, B_GAPS), lo) < level) return false; // a choice between the ends
  const du = f64at(pu, lo + 1) - f64at(pu, lo), dc = f64at(pc, lo + 1) - f64at(pc, lo);
  // stops before it: the LP without this segment, that is, at free + du less the segment (walk up from lo)
  const up = free + du;
  let stops = f64at(f, B_TOTAL_COST);
  if (up < totalUse) {
    let j = lo;
    while (j < m && f64at(pu, j + 1) <= up) j++;
    stops = f64at(pc, j) + Math.max(0, up - f64at(pu, j)) * f64at(sl, j);
  }
  if (baseCost + stops - dc < level) return false;
  // takes it whole: the segment, and the LP at free - du (walk down from lo)
  if (free - du < -rowTolerance(R)) return true;
  const down = Math.max(0, free - du);
  let j = lo;
  while (j > 0 && f64at(pu, j) > down) j--;
  const whole = f64at(pc, j) + Math.max(0, down - f64at(pu, j)) * f64at(sl, j);
  return baseCost + whole + dc >= level;
}

/**
 * Whether no completion of a partial policy with this cost and use (f64[K] at `at`), at the depth
 * `prepareBounds` loaded, can beat the cutoff.
 */
function pruned(costSum: f64, at: usize): bool {
  for (let r = 0; r < K; r++) {
    const e = i32at(rowOrder, r);
    let others: f64 = 0;
    for (let k = 0; k < K; k++) if (k != e) others += f64at(lambda, k) * (f64at(limits, k) - f64at(at, k));
    if (exceeds(e, f64at(limits, e) - f64at(at, e), cutoff - costSum + others)) {
      // rows that prune more often are asked first (on W3A4/CR12.2 the size row, 2:1)
      const count = i32at(prunes, e) + 1;
      setI32(prunes, e, count);
      if (r > 0 && count > i32at(prunes, i32at(rowOrder, r - 1))) {
        setI32(rowOrder, r, i32at(rowOrder, r - 1));
        setI32(rowOrder, r - 1, e);
      }
      return true;
    }
  }
  return false;
}

/** the rows in the order `pruned` asks them, and how often each pruned in this solve */
let rowOrder: usize = 0, prunes: usize = 0;

// ---- rounds: the dive ---------------------------------------------------------------------------

/** Sums of reduced cost and cost over the dive's path before each depth (f64[n + 1]). */
let rcAt: usize = 0, costAt: usize = 0;

/**
 * Depth first in reduced-cost order, within a node budget (then `stopped`), for a policy below
 * the cutoff; without stopping it has searched every policy below the cutoff. A loop, not a
 * recursion: thousands of layers deep would overflow the stack.
 */
function dive(): void {
  let d = 0;
  setI32(pick, 0, -1);
  setF64(rcAt, 0, 0);
  setF64(costAt, 0, 0);
  while (d >= 0) {
    if (d == n) {
      if (f64at(costAt, n) < cutoff) record(f64at(costAt, n), pick);
      d = back(d);
      continue;
    }
    const first = i32at(choiceStart, d), m = i32at(choiceStart, d + 1) - first;
    const rest = f64at(suffixRc, d + 1) - sumLambda;
    const next = (d + 1) * K;
    let t = i32at(pick, d) + 1;
    for (; t < m; t++) {
      const c = first + t;
      const rc = f64at(rcAt, d) + f64at(rcP, c);
      if (rc + rest >= cutoff) { t = m; break; } // sorted by reduced cost: no later child does better
      let fits = true;
      for (let k = 0; k < K; k++) {
        if (f64at(used, k) + f64at(useP, c * K + k) + f64at(suffixUse, next + k) > f64at(slack, k)) { fits = false; break; }
      }
      if (!fits) continue;
      nodes++;
      diveNodes++;
      if (foundInRound) nodesSinceIncumbent++;
      if (diveNodes >= DIVE_NODES || nodesSinceIncumbent >= DIVE_NODES_AFTER_INCUMBENT) {
        stopped = 1;
        return;
      }
      for (let k = 0; k < K; k++) setF64(used, k, f64at(used, k) + f64at(useP, c * K + k));
      const cost = f64at(costAt, d) + f64at(costP, c);
      prepareBounds(d + 1);
      if (pruned(cost, used)) {
        for (let k = 0; k < K; k++) setF64(used, k, f64at(used, k) - f64at(useP, c * K + k));
        continue;
      }
      setI32(pick, d, t);
      setF64(rcAt, d + 1, rc);
      setF64(costAt, d + 1, cost);
      break;
    }
    if (t < m) {
      d++;
      if (d < n) setI32(pick, d, -1);
    } else {
      d = back(d);
    }
  }
}

/** The dive leaves depth d: back to its parent, whose child's use is taken off. */
function back(d: i32): i32 {
  d--;
  if (d >= 0) {
    const c = i32at(choiceStart, d) + i32at(pick, d);
    for (let k = 0; k < K; k++) setF64(used, k, f64at(used, k) - f64at(useP, c * K + k));
  }
  return d;
}

// ---- rounds: swaps ------------------------------------------------------------------------------

/** Move layer d of policy `p` to choice t, updating its use per row; returns the change in cost. */
@inline function moveTo(p: usize, use: usize, d: i32, t: i32): f64 {
  const first = i32at(choiceStart, d), from = i32at(p, d);
  for (let k = 0; k < K; k++) setF64(use, k, f64at(use, k) + (f64at(useP, (first + t) * K + k) - f64at(useP, (first + from) * K + k)));
  setI32(p, d, t);
  return f64at(costP, first + t) - f64at(costP, first + from);
}

/**
 * Improve the policy in `p` by moving one layer, or two at once (up to PAIR_SWAP_LAYERS layers),
 * to another choice whose reduced cost is within `gap` of the layer's best, while it stays within
 * every row and gets cheaper; until no such move helps. Returns its cost.
 */
function improveBySwaps(p: usize, cost: f64, gap: f64): f64 {
  const use = zeros(K), delta = f64s(K), candidates = i32s(n);
  for (let d = 0; d < n; d++) {
    const first = i32at(choiceStart, d), m = i32at(choiceStart, d + 1) - first;
    for (let k = 0; k < K; k++) setF64(use, k, f64at(use, k) + f64at(useP, (first + i32at(p, d)) * K + k));
    // choices are in reduced-cost order, so each layer's candidates are a prefix
    let c = 1;
    while (c < m && f64at(rcP, first + c) - f64at(rcP, first) <= gap) c++;
    setI32(candidates, d, c);
  }
  let improved = true;
  for (let round = 0; improved && round < 16; round++) {
    improved = false;
    for (let i = 0; i < n; i++) {
      const fi = i32at(choiceStart, i);
      for (let ti = 0; ti < i32at(candidates, i); ti++) {
        const pi = i32at(p, i);
        if (ti == pi) continue;
        const saved = f64at(costP, fi + pi) - f64at(costP, fi + ti);
        for (let k = 0; k < K; k++) setF64(delta, k, f64at(useP, (fi + ti) * K + k) - f64at(useP, (fi + pi) * K + k));
        let fits = true;
        for (let k = 0; k < K; k++) if (f64at(use, k) + f64at(delta, k) > f64at(slack, k)) { fits = false; break; }
        if (saved > 0 && fits) {
          cost += moveTo(p, use, i, ti);
          improved = true;
          continue;
        }
        for (let j = i + 1; j < n && n <= PAIR_SWAP_LAYERS; j++) {
          const fj = i32at(choiceStart, j), pj = i32at(p, j);
          let moved = false;
          for (let tj = 0; tj < i32at(candidates, j); tj++) {
            if (tj == pj || saved + f64at(costP, fj + pj) - f64at(costP, fj + tj) <= 0) continue;
            let ok = true;
            for (let k = 0; k < K && ok; k++) {
              ok = f64at(use, k) + f64at(delta, k) + f64at(useP, (fj + tj) * K + k) - f64at(useP, (fj + pj) * K + k) <= f64at(slack, k);
            }
            if (ok) {
              cost += moveTo(p, use, i, ti);
              cost += moveTo(p, use, j, tj);
              improved = true;
              moved = true;
              break;
            }
          }
          if (moved) break;
        }
      }
    }
  }
  return cost;
}

// ---- rounds: sweeps -----------------------------------------------------------------------------

// A level of partial policies in growable arrays (cost, reduced cost, use per row, parent, choice),
// as a record in memory: size, capacity, then the five array pointers.
const L_SIZE = 0, L_CAP = 4, L_COST = 8, L_RC = 12, L_USE = 16, L_PARENT = 20, L_PICK = 24, L_BYTES = 28;

@inline function lsize(l: usize): i32 { return load<i32>(l, L_SIZE); }
@inline function larr(l: usize, field: usize): usize { return <usize>load<u32>(l + field); }

function newLevel(capacity: i32): usize {
  const l = alloc(L_BYTES);
  store<i32>(l, 0, L_SIZE); store<i32>(l, capacity, L_CAP);
  store<u32>(l, <u32>f64s(capacity), L_COST); store<u32>(l, <u32>f64s(capacity), L_RC);
  store<u32>(l, <u32>f64s(capacity * K), L_USE);
  store<u32>(l, <u32>i32s(capacity), L_PARENT); store<u32>(l, <u32>i32s(capacity), L_PICK);
  return l;
}

function ensure(l: usize, need: i32): void {
  let cap = load<i32>(l, L_CAP);
  if (need <= cap) return;
  while (cap < need) {
    if (cap >= 1 << 28) { // more partial policies than the memory could hold: the limit stops the solve
      outOfMemory = true;
      unreachable();
    }
    cap *= 2;
  }
  const size = lsize(l);
  store<u32>(l, <u32>growF64(larr(l, L_COST), size, cap), L_COST);
  store<u32>(l, <u32>growF64(larr(l, L_RC), size, cap), L_RC);
  store<u32>(l, <u32>growF64(larr(l, L_USE), size * K, cap * K), L_USE);
  store<u32>(l, <u32>growI32(larr(l, L_PARENT), size, cap), L_PARENT);
  store<u32>(l, <u32>growI32(larr(l, L_PICK), size, cap), L_PICK);
  store<i32>(l, cap, L_CAP);
}

/** Starting capacity in partial policies: ResNet-50 W3A4/CR12.2 needs ~2,500 a depth. */
const INITIAL_STATES: i32 = 4096;

let levelA: usize = 0, levelB: usize = 0, kids: usize = 0;
/** the children's arrays (kids' fields, reloaded when they grow) */
let kidCost: usize = 0, kidRc: usize = 0, kidUse: usize = 0, kidParent: usize = 0, kidPick: usize = 0;

function loadKidArrays(): void {
  kidCost = larr(kids, L_COST); kidRc = larr(kids, L_RC); kidUse = larr(kids, L_USE);
  kidParent = larr(kids, L_PARENT); kidPick = larr(kids, L_PICK);
}
/** children per choice (runs[t + 1]), then run starts */
let runs: usize = 0;
let runsCapacity: i32 = 0;
let order: usize = 0, scratch: usize = 0, orderCapacity: i32 = 0;
let stairUse: usize = 0, stairCost: usize = 0, stairCapacity: i32 = 0;
let bounds: usize = 0, merged: usize = 0;

/** a before b: less use row by row, then less cost, then made first (use, cost: the children's arrays) */
@inline function before(use: usize, cost: usize, a: i32, b: i32): bool {
  for (let k = 0; k < K; k++) {
    const d = f64at(use, a * K + k) - f64at(use, b * K + k);
    if (d != 0) return d < 0;
  }
  const d = f64at(cost, a) - f64at(cost, b);
  return d != 0 ? d < 0 : a < b;
}

/** The children in lexicographic order: grouped by choice (sorted runs), then runs merged pairwise. */
function sorted(choices: i32): usize {
  const m = lsize(kids);
  if (orderCapacity < m) {
    orderCapacity = m * 2;
    order = i32s(orderCapacity);
    scratch = i32s(orderCapacity);
  }
  // runs[t + 1] holds the count of choice t: prefix sums give where each run starts
  let runCount = 0;
  setI32(bounds, runCount++, 0);
  for (let t = 1; t <= choices; t++) {
    setI32(runs, t, i32at(runs, t) + i32at(runs, t - 1));
    if (i32at(runs, t) > i32at(bounds, runCount - 1)) setI32(bounds, runCount++, i32at(runs, t));
  }
  const pickArr = larr(kids, L_PICK), use = larr(kids, L_USE), cost = larr(kids, L_COST);
  let src = order, dst = scratch;
  // fill position per choice: runs[t] is the start of choice t's run
  for (let i = 0; i < m; i++) {
    const t = i32at(pickArr, i);
    const at = i32at(runs, t);
    setI32(src, at, i);
    setI32(runs, t, at + 1);
  }
  while (runCount > 2) {
    let out = 0;
    setI32(merged, out++, 0);
    for (let r = 0; r + 1 < runCount; r += 2) {
      const lo = i32at(bounds, r), mid = i32at(bounds, r + 1), hi = r + 2 < runCount ? i32at(bounds, r + 2) : mid;
      let i = lo, j = mid, o = lo;
      while (i < mid && j < hi) {
        if (before(use, cost, i32at(src, j), i32at(src, i))) setI32(dst, o++, i32at(src, j++));
        else setI32(dst, o++, i32at(src, i++));
      }
      while (i < mid) setI32(dst, o++, i32at(src, i++));
      while (j < hi) setI32(dst, o++, i32at(src, j++));
      setI32(merged, out++, hi);
    }
    const swap = src; src = dst; dst = swap;
    const b = bounds; bounds = merged; merged = b;
    runCount = out;
  }
  return src;
}

/** Copy child i into `to` as its next state (`to` has room). */
@inline function keep(to: usize, i: i32): void {
  const q = lsize(to);
  store<i32>(to, q + 1, L_SIZE);
  setF64(larr(to, L_COST), q, f64at(kidCost, i));
  setF64(larr(to, L_RC), q, f64at(kidRc, i));
  setI32(larr(to, L_PARENT), q, i32at(kidParent, i));
  setI32(larr(to, L_PICK), q, i32at(kidPick, i));
  const tu = larr(to, L_USE);
  for (let k = 0; k < K; k++) setF64(tu, q * K + k, f64at(kidUse, i * K + k));
}

/**
 * Write into `to` the children no other child dominates (no more cost, no more use in every row;
 * of equal ones the first), in lexicographic order. False when the time ran out.
 */
function keepNondominated(to: usize, choices: i32): bool {
  const m = lsize(kids);
  store<i32>(to, 0, L_SIZE);
  if (m == 0) return true;
  const ord = sorted(choices);
  ensure(to, m);
  const cost = kidCost, use = kidUse;
  if (K == 1) {
    let least = Infinity;
    for (let r = 0; r < m; r++) {
      const i = i32at(ord, r);
      if (f64at(cost, i) < least) { keep(to, i); least = f64at(cost, i); }
    }
    return true;
  }
  // In first-row order, a child is dominated in the first two rows when an earlier kept one has no
  // more second-row use and no more cost: the staircase of kept children's (second-row use, cost),
  // cost falling. With two rows that decides; with more, a child the staircase clears is kept at
  // once, and only one it does not clear is compared with the kept ones row by row.
  if (stairCapacity < m + 1) {
    stairCapacity = (m + 1) * 2;
    stairUse = f64s(stairCapacity);
    stairCost = f64s(stairCapacity);
  }
  stairHeight = 0;
  const toCost = larr(to, L_COST), toUse = larr(to, L_USE);
  for (let r = 0; r < m; r++) {
    if (K > 2 && (r & 1023) == 1023 && outOfTime()) return false; // quadratic: the time limit must reach in here
    const i = i32at(ord, r);
    const v = f64at(use, i * K + 1), c = f64at(cost, i);
    const step = stairStep(v);
    if (step > 0 && f64at(stairCost, step - 1) <= c) {
      if (K == 2) continue;
      let dominated = false;
      // the latest kept first: the nearest in use, so the likeliest to dominate
      for (let p = lsize(to) - 1; p >= 0 && !dominated; p--) {
        if (f64at(toCost, p) > c) continue;
        let le = true;
        for (let k = 2; k < K && le; k++) le = f64at(toUse, p * K + k) <= f64at(use, i * K + k);
        dominated = le && f64at(toUse, p * K + 1) <= v;
      }
      // kept, but off the staircase: a step there already covers it in the first two rows
      if (!dominated) keep(to, i);
      continue;
    }
    keep(to, i);
    stairInsert(step, v, c);
  }
  return true;
}

let stairHeight: i32 = 0;

/** The first step of the staircase with second-row use above v. */
@inline function stairStep(v: f64): i32 {
  let lo = 0, hi = stairHeight;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (f64at(stairUse, mid) <= v) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/** Put (v, c) on the staircase at `lo` (stairStep's), dropping the steps from lo on it dominates. */
function stairInsert(lo: i32, v: f64, c: f64): void {
  const h = stairHeight;
  let q = lo;
  while (q < h && f64at(stairCost, q) >= c) q++;
  if (q == lo) {
    const bytes = (<usize>(h - lo)) << 3, at = (<usize>lo) << 3;
    memory.copy(stairUse + at + 8, stairUse + at, bytes);
    memory.copy(stairCost + at + 8, stairCost + at, bytes);
    stairHeight = h + 1;
  } else if (q > lo + 1) {
    const gap = q - lo - 1;
    const bytes = (<usize>(h - q)) << 3, from = (<usize>q) << 3, to = (<usize>(q - gap)) << 3;
    memory.copy(stairUse + to, stairUse + from, bytes);
    memory.copy(stairCost + to, stairCost + from, bytes);
    stairHeight = h - gap;
  }
  setF64(stairUse, lo, v);
  setF64(stairCost, lo, c);
}

/**
 * One sweep over partial policies, depth by depth, keeping those no other dominates and whose
 * bound is below the cutoff. False when the time ran out.
 */
function sweep(): bool {
  if (levelA == 0) {
    levelA = newLevel(INITIAL_STATES);
    levelB = newLevel(INITIAL_STATES);
    kids = newLevel(INITIAL_STATES);
  }
  let from = levelA, to = levelB;
  store<i32>(from, 1, L_SIZE);
  setF64(larr(from, L_COST), 0, 0); setF64(larr(from, L_RC), 0, 0);
  setI32(larr(from, L_PARENT), 0, -1); setI32(larr(from, L_PICK), 0, -1);
  for (let k = 0; k < K; k++) setF64(larr(from, L_USE), k, 0);
  let depths = 0; // depths with partial policies left
  for (let d = 0; d < n && lsize(from) > 0; d++) {
    depthNow = d;
    if (outOfTime()) return false;
    const first = i32at(choiceStart, d), m = i32at(choiceStart, d + 1) - first;
    const rest = f64at(suffixRc, d + 1) - sumLambda;
    const next = (d + 1) * K;
    store<i32>(kids, 0, L_SIZE);
    if (runsCapacity < m + 1) { runsCapacity = (m + 1) * 2; runs = i32s(runsCapacity); bounds = i32s(runsCapacity + 1); merged = i32s(runsCapacity + 1); }
    memory.fill(runs, 0, (<usize>(m + 1)) << 2);
    prepareBounds(d + 1);
    const fromSize = lsize(from);
    const fromRc = larr(from, L_RC), fromCost = larr(from, L_COST), fromUse = larr(from, L_USE);
    let size = 0;
    loadKidArrays();
    for (let s = 0; s < fromSize; s++) {
      if ((s & 4095) == 4095 && outOfTime()) return false;
      const rcBase = f64at(fromRc, s), costBase = f64at(fromCost, s);
      // room for every child of this parent
      if (size + m > load<i32>(kids, L_CAP)) {
        store<i32>(kids, size, L_SIZE);
        ensure(kids, size + m);
        loadKidArrays();
      }
      for (let t = 0; t < m; t++) {
        const c = first + t;
        const rc = rcBase + f64at(rcP, c);
        if (rc + rest >= cutoff) break;
        const at = kidUse + ((<usize>(size * K)) << 3);
        let fits = true;
        for (let k = 0; k < K; k++) {
          const u = f64at(fromUse, s * K + k) + f64at(useP, c * K + k);
          setF64(at, k, u);
          if (u + f64at(suffixUse, next + k) > f64at(slack, k)) { fits = false; break; }
        }
        if (!fits) continue;
        const cost = costBase + f64at(costP, c);
        if (pruned(cost, at)) continue;
        setF64(kidCost, size, cost);
        setF64(kidRc, size, rc);
        setI32(kidParent, size, s);
        setI32(kidPick, size, t);
        size++;
        setI32(runs, t + 1, i32at(runs, t + 1) + 1);
      }
    }
    store<i32>(kids, size, L_SIZE);
    if (!keepNondominated(to, m)) return false;
    const keptCount = lsize(to);
    states += <f64>keptCount;
    // the path back: each kept state's parent and choice at this depth
    const keptParents = i32s(keptCount), keptPicks = i32s(keptCount);
    memory.copy(keptParents, larr(to, L_PARENT), (<usize>keptCount) << 2);
    memory.copy(keptPicks, larr(to, L_PICK), (<usize>keptCount) << 2);
    setI32(parents, d, <i32>keptParents);
    setI32(picks, d, <i32>keptPicks);
    depths = d + 1;
    const swap = from; from = to; to = swap;
  }
  if (depths < n) return true;
  const fromCost = larr(from, L_COST);
  let q = -1;
  for (let s = 0; s < lsize(from); s++) {
    if (f64at(fromCost, s) < cutoff && (q < 0 || f64at(fromCost, s) < f64at(fromCost, q))) q = s;
  }
  if (q >= 0) {
    const c = f64at(fromCost, q);
    for (let d = n - 1; d >= 0; d--) {
      setI32(pick, d, i32at(<usize>i32at(picks, d), q));
      q = i32at(<usize>i32at(parents, d), q);
    }
    record(c, pick);
  }
  return true;
}

/** Whether the deadline has passed; on the way, the progress of a long solve (every PROGRESS_EVERY ms, after PROGRESS_AFTER). */
function outOfTime(): bool {
  const t = now();
  if (t - started >= PROGRESS_AFTER && t - lastProgress >= PROGRESS_EVERY) {
    lastProgress = t;
    progress(rounds, depthNow, n, states, provenBound, hasBest ? best : Infinity);
  }
  return t > deadline;
}
/** the depth the sweep is at, for progress reports */
let depthNow: i32 = 0;

// ---- steps 1-4: undominated choices, the LP bound, reduced costs, an incumbent; the rounds' views ---

/**
 * Indices 0..m-1 in order of key[keyAt + t * stride] (ties: lower index first), by insertion, into
 * out[outAt..]: m is a layer's choice count, small enough that this beats a sort.
 */
function orderBy(key: usize, keyAt: i32, stride: i32, m: i32, out: usize, outAt: i32): void {
  for (let t = 0; t < m; t++) {
    const v = f64at(key, keyAt + t * stride);
    let r = t;
    while (r > 0 && f64at(key, keyAt + i32at(out, outAt + r - 1) * stride) > v) {
      setI32(out, outAt + r, i32at(out, outAt + r - 1));
      r--;
    }
    setI32(out, outAt + r, t);
  }
}

// Step 1, per layer: the choices no other choice dominates (no more cost and no more use in every
// row; of identical choices the first), in problem order, with per row their order of use.
let keptStart: usize = 0;
let keptIdx: usize = 0;
let keptCost: usize = 0;
let keptUse: usize = 0;
/** per row k, i32 pointer: each layer's kept choices in order of use (indices from keptStart) */
let keptByUse: usize = 0;

function undominated(starts: usize, cost: usize, use: usize): void {
  const total = i32at(starts, N);
  keptStart = i32s(N + 1);
  keptIdx = i32s(total); keptCost = f64s(total); keptUse = f64s(total * K);
  let kept = 0;
  for (let i = 0; i < N; i++) {
    setI32(keptStart, i, kept);
    const s0 = i32at(starts, i), m = i32at(starts, i + 1) - s0;
    for (let j = 0; j < m; j++) {
      const cj = f64at(cost, s0 + j);
      let dominated = false;
      for (let q = 0; q < m && !dominated; q++) {
        const cq = f64at(cost, s0 + q);
        if (q == j || cq > cj) continue;
        let le = true, strict = cq < cj;
        for (let k = 0; k < K; k++) {
          const dq = f64at(use, (s0 + q) * K + k), dj = f64at(use, (s0 + j) * K + k);
          if (dq > dj) { le = false; break; }
          if (dq < dj) strict = true;
        }
        dominated = le && (strict || q < j);
      }
      if (!dominated) {
        setI32(keptIdx, kept, j);
        setF64(keptCost, kept, cj);
        for (let k = 0; k < K; k++) setF64(keptUse, kept * K + k, f64at(use, (s0 + j) * K + k));
        kept++;
      }
    }
  }
  setI32(keptStart, N, kept);
  keptByUse = i32s(K);
  for (let k = 0; k < K; k++) {
    const order = i32s(kept);
    setI32(keptByUse, k, <i32>order);
    for (let i = 0; i < N; i++) {
      const ks = i32at(keptStart, i);
      orderBy(keptUse, ks * K + k, K, i32at(keptStart, i + 1) - ks, order, ks);
    }
  }
  // Use is measured from each layer's least, per row: the same problem with limits less the sum of
  // the least (leastUse), and no large numbers to cancel when the multipliers are large.
  leastUse = zeros(K);
  for (let k = 0; k < K; k++) {
    const order = <usize>i32at(keptByUse, k);
    for (let i = 0; i < N; i++) {
      const ks = i32at(keptStart, i), m = i32at(keptStart, i + 1) - ks;
      const least = f64at(keptUse, (ks + i32at(order, ks)) * K + k);
      for (let t = 0; t < m; t++) setF64(keptUse, (ks + t) * K + k, f64at(keptUse, (ks + t) * K + k) - least);
      setF64(leastUse, k, f64at(leastUse, k) + least);
    }
  }
}
/** per row, Σ over layers of the layer's least use (taken off every use in keptUse) */
let leastUse: usize = 0;

/**
 * The lower convex hull of the points (u[p], c[p]), p visited in the order byUse[at..at+m) (use
 * ascending): written to `hull` from the least-use point, its size returned. Of points with equal
 * use only the cheapest counts.
 */
function lowerHull(u: usize, c: usize, byUse: usize, at: i32, m: i32, hull: usize): i32 {
  let h = 0;
  for (let r = 0; r < m; r++) {
    const p = i32at(byUse, at + r);
    if (h > 0 && f64at(u, i32at(hull, h - 1)) == f64at(u, p)) {
      if (f64at(c, p) >= f64at(c, i32at(hull, h - 1))) continue;
      h--;
    }
    while (h >= 2) {
      const a = i32at(hull, h - 2), b = i32at(hull, h - 1);
      if ((f64at(c, b) - f64at(c, a)) * (f64at(u, p) - f64at(u, a)) >= (f64at(c, p) - f64at(c, a)) * (f64at(u, b) - f64at(u, a))) h--;
      else break;
    }
    setI32(hull, h++, p);
  }
  return h;
}

/** The first hull point of least cost: where the hull stops saving cost as use grows. */
function cheapestOnHull(c: usize, hull: usize, h: i32): i32 {
  let top = 0;
  for (let x = 1; x < h; x++) if (f64at(c, i32at(hull, x)) < f64at(c, i32at(hull, top))) top = x;
  return top;
}

/**
 * The least t[e] such that the drops of the events up to it (in order of t) sum to at least
 * `need`; the largest t when they never do, 0 without events. Quickselect.
 */
function weightedQuantile(t: usize, drop: usize, count: i32, need: f64, idx: usize): f64 {
  if (count == 0) return 0;
  for (let e = 0; e < count; e++) setI32(idx, e, e);
  let lo = 0, hi = count;
  let largest = -Infinity;
  for (let e = 0; e < count; e++) largest = Math.max(largest, f64at(t, e));
  while (lo < hi) {
    const pivot = f64at(t, i32at(idx, (lo + hi) >> 1));
    // three-way partition of idx[lo, hi) into t < pivot, t = pivot, t > pivot
    let lt = lo, i = lo, gt = hi;
    let below: f64 = 0, equal: f64 = 0;
    while (i < gt) {
      const e = i32at(idx, i), v = f64at(t, e);
      if (v < pivot) { setI32(idx, i, i32at(idx, lt)); setI32(idx, lt++, e); below += f64at(drop, e); i++; }
      else if (v > pivot) { setI32(idx, i, i32at(idx, --gt)); setI32(idx, gt, e); }
      else { equal += f64at(drop, e); i++; }
    }
    if (below >= need) hi = lt;
    else if (below + equal >= need) return pivot;
    else { need -= below + equal; lo = gt; }
  }
  return largest;
}

// scratch for lineMaximum
let eventT: usize = 0, eventDrop: usize = 0, eventIdx: usize = 0, workU: usize = 0, workBase: usize = 0, workHull: usize = 0;

/**
 * The best λ_k with the other multipliers fixed: per layer the minimum over choices of
 * base_j + t·u_j is the lower envelope of lines, whose breakpoints come from the lower convex hull
 * of (u_j, base_j); the dual's slope in t is Σ_i u_i(t) − rhs.
 */
function lineMaximum(scale: usize, lam: usize, k: i32, rhs: f64): f64 {
  let events = 0;
  let slope = -rhs;
  const byUse = <usize>i32at(keptByUse, k);
  for (let i = 0; i < N; i++) {
    const ks = i32at(keptStart, i), m = i32at(keptStart, i + 1) - ks;
    for (let t = 0; t < m; t++) {
      let b = f64at(keptCost, ks + t);
      for (let r = 0; r < K; r++) if (r != k) b += f64at(lam, r) * f64at(keptUse, (ks + t) * K + r) * f64at(scale, r);
      setF64(workU, t, f64at(keptUse, (ks + t) * K + k) * f64at(scale, k));
      setF64(workBase, t, b);
    }
    const h = lowerHull(workU, workBase, byUse, ks, m, workHull);
    // the envelope at t = 0 sits at the hull point of least base (least u among ties)
    const top = cheapestOnHull(workBase, workHull, h);
    slope += f64at(workU, i32at(workHull, top));
    for (let x = top; x > 0; x--) {
      const p = i32at(workHull, x), q = i32at(workHull, x - 1);
      setF64(eventT, events, (f64at(workBase, q) - f64at(workBase, p)) / (f64at(workU, p) - f64at(workU, q)));
      setF64(eventDrop, events++, f64at(workU, p) - f64at(workU, q));
    }
  }
  if (slope <= 0) return 0;
  return weightedQuantile(eventT, eventDrop, events, slope, eventIdx);
}

/**
 * Step 2a: multipliers λ ≥ 0 for the Lagrangian dual, by cyclic coordinate ascent with an exact
 * line search per row, on rows scaled by their limits (into `lam`, scaled). Exact for one row; with
 * more it can stall where the dual has a ridge (on LLM-like tables its bound was 5x farther from
 * the optimum than the LP's), so refineMultipliers takes it from there.
 */
function coordinateAscent(scale: usize, rhs: usize, lam: usize, maxChoices: i32): void {
  const total = N * maxChoices;
  eventT = f64s(total); eventDrop = f64s(total); eventIdx = i32s(total);
  workU = f64s(maxChoices); workBase = f64s(maxChoices); workHull = i32s(maxChoices);
  let last = -Infinity;
  for (let round = 0; round < 3; round++) {
    for (let k = 0; k < K; k++) setF64(lam, k, lineMaximum(scale, lam, k, f64at(rhs, k)));
    const value = lagrangian(scale, rhs, lam, -1);
    if (value <= last + 1e-12 * Math.max(1, Math.abs(value)) || K == 1) break;
    last = value;
  }
}

// The cutting planes of refineMultipliers: cut t is a policy, its cost and its scaled use less the
// scaled limits (g_t); L(λ) ≤ cost_t + λ·g_t for every λ.
let cutCost: usize = 0, cutG: usize = 0, cutCount: i32 = 0;
/** the master LP: its basis (column per row), its inverse, a work matrix, the box on λ, its solution */
let basis: usize = 0, inverse: usize = 0, work: usize = 0, box: usize = 0, masterLam: usize = 0, masterY: usize = 0, masterX: usize = 0;
let masterValue: f64 = 0;
let kelleyRounds: i32 = 0;

/**
 * The Lagrangian L(λ) = Σ_i min_j (c_ij + λ·u_ij·scale) − λ·rhs at scaled multipliers `lam`; with
 * `asCut` ≥ 0 its minimising policy is stored as cut `asCut`.
 */
function lagrangian(scale: usize, rhs: usize, lam: usize, asCut: i32): f64 {
  let value: f64 = 0, cost: f64 = 0;
  const g = asCut >= 0 ? cutG + ((<usize>(asCut * K)) << 3) : 0;
  if (asCut >= 0) for (let k = 0; k < K; k++) setF64(g, k, -f64at(rhs, k));
  for (let i = 0; i < N; i++) {
    const ks = i32at(keptStart, i), m = i32at(keptStart, i + 1) - ks;
    let least = Infinity, at = ks;
    for (let t = 0; t < m; t++) {
      let v = f64at(keptCost, ks + t);
      for (let k = 0; k < K; k++) v += f64at(lam, k) * f64at(keptUse, (ks + t) * K + k) * f64at(scale, k);
      if (v < least) { least = v; at = ks + t; }
    }
    value += least;
    if (asCut >= 0) {
      cost += f64at(keptCost, at);
      for (let k = 0; k < K; k++) setF64(g, k, f64at(g, k) + f64at(keptUse, at * K + k) * f64at(scale, k));
    }
  }
  for (let k = 0; k < K; k++) value -= f64at(lam, k) * f64at(rhs, k);
  if (asCut >= 0) setF64(cutCost, asCut, cost);
  return value;
}

// Columns of the master LP, min Σ_t μ_t cost_t + Σ_k ν_k box_k subject to Σ_t μ_t = 1 and, per row
// k, Σ_t μ_t g_tk − ν_k + s_k = 0 (μ, ν, s ≥ 0): ν_k are columns 0..K-1, s_k K..2K-1, cut t 2K + t.
// Its duals are Kelley's master problem, max θ subject to θ ≤ cost_t + λ·g_t, 0 ≤ λ ≤ box: the
// dual of row k is −λ_k.
@inline function column(j: i32, r: i32): f64 {
  if (j < K) return r == j + 1 ? -1 : 0;
  if (j < 2 * K) return r == j - K + 1 ? 1 : 0;
  return r == 0 ? 1 : f64at(cutG, (j - 2 * K) * K + r - 1);
}
@inline function columnCost(j: i32): f64 {
  return j < K ? f64at(box, j) : j < 2 * K ? 0 : f64at(cutCost, j - 2 * K);
}

/** The inverse of the basis matrix (rows K + 1), by Gauss–Jordan with partial pivoting; false if singular. */
function invertBasis(): bool {
  const m = K + 1, w = 2 * m;
  for (let r = 0; r < m; r++) {
    for (let c = 0; c < m; c++) setF64(work, r * w + c, column(i32at(basis, c), r));
    for (let c = 0; c < m; c++) setF64(work, r * w + m + c, r == c ? 1 : 0);
  }
  for (let c = 0; c < m; c++) {
    let p = c;
    for (let r = c + 1; r < m; r++) if (Math.abs(f64at(work, r * w + c)) > Math.abs(f64at(work, p * w + c))) p = r;
    if (Math.abs(f64at(work, p * w + c)) < 1e-14) return false;
    if (p != c) for (let x = 0; x < w; x++) { const v = f64at(work, c * w + x); setF64(work, c * w + x, f64at(work, p * w + x)); setF64(work, p * w + x, v); }
    const pivot = f64at(work, c * w + c);
    for (let x = 0; x < w; x++) setF64(work, c * w + x, f64at(work, c * w + x) / pivot);
    for (let r = 0; r < m; r++) {
      const f = f64at(work, r * w + c);
      if (r == c || f == 0) continue;
      for (let x = 0; x < w; x++) setF64(work, r * w + x, f64at(work, r * w + x) - f * f64at(work, c * w + x));
    }
  }
  for (let r = 0; r < m; r++) for (let c = 0; c < m; c++) setF64(inverse, r * m + c, f64at(work, r * w + m + c));
  return true;
}

/**
 * The master LP by the primal simplex from the current basis (feasible: new cuts are new columns,
 * box changes move costs only), Dantzig's rule and Bland's after many pivots (no cycling). Its
 * value into masterValue, λ into masterLam; false if it failed numerically.
 */
function solveMaster(): bool {
  const m = K + 1, columns = 2 * K + cutCount;
  for (let pivot = 0; pivot < 1000; pivot++) {
    if (!invertBasis()) return false;
    for (let r = 0; r < m; r++) setF64(masterX, r, f64at(inverse, r * m)); // B⁻¹ e₀
    for (let r = 0; r < m; r++) {
      let y: f64 = 0;
      for (let i = 0; i < m; i++) y += columnCost(i32at(basis, i)) * f64at(inverse, i * m + r);
      setF64(masterY, r, y);
    }
    let enter = -1, most: f64 = -1e-13;
    for (let j = 0; j < columns; j++) {
      let inBasis = false;
      for (let i = 0; i < m; i++) if (i32at(basis, i) == j) inBasis = true;
      if (inBasis) continue;
      let d = columnCost(j);
      for (let r = 0; r < m; r++) d -= f64at(masterY, r) * column(j, r);
      if (d < most) {
        enter = j;
        most = d;
        if (pivot > 100) break; // Bland: the first improving column
      }
    }
    if (enter < 0) {
      masterValue = 0;
      for (let i = 0; i < m; i++) masterValue += columnCost(i32at(basis, i)) * f64at(masterX, i);
      for (let k = 0; k < K; k++) setF64(masterLam, k, Math.max(0, -f64at(masterY, k + 1)));
      return true;
    }
    let leave = -1, ratio = Infinity;
    for (let i = 0; i < m; i++) {
      let dir: f64 = 0;
      for (let r = 0; r < m; r++) dir += f64at(inverse, i * m + r) * column(enter, r);
      if (dir <= 1e-12) continue;
      const q = Math.max(0, f64at(masterX, i)) / dir;
      if (q < ratio || (q == ratio && i32at(basis, i) < i32at(basis, leave))) { ratio = q; leave = i; }
    }
    if (leave < 0) return false; // unbounded: cannot happen with the box
    setI32(basis, leave, enter);
  }
  return false;
}

/**
 * Step 2b: the exact LP bound for two rows or more, by Kelley's cutting planes from the coordinate
 * ascent's λ: each round solves the master LP over the cuts so far (a linear program in K + 1
 * unknowns), evaluates L at its λ and adds that policy as a cut; it stops when the master's value
 * (an upper bound on max L) meets the best L found. The box on λ grows while λ presses on it.
 * About 20 rounds on LLM-like tables. Returns false when L exceeds the dearest policy: the LP,
 * and so the problem, has no solution. (L is evaluated on uses from each layer's least, so a
 * large λ does not cancel large numbers: see undominated.)
 */
function refineMultipliers(scale: usize, rhs: usize, lam: usize): bool {
  cutCost = f64s(MAX_CUTS); cutG = f64s(MAX_CUTS * K);
  basis = i32s(K + 1); inverse = f64s((K + 1) * (K + 1)); work = f64s(2 * (K + 1) * (K + 1));
  box = f64s(K); masterLam = f64s(K); masterY = f64s(K + 1); masterX = f64s(K + 1);
  let dearest: f64 = 0;
  for (let i = 0; i < N; i++) {
    const ks = i32at(keptStart, i), m = i32at(keptStart, i + 1) - ks;
    let most = -Infinity;
    for (let t = 0; t < m; t++) most = Math.max(most, f64at(keptCost, ks + t));
    dearest += most;
  }
  cutCount = 1;
  let bestValue = lagrangian(scale, rhs, lam, 0);
  for (let k = 0; k < K; k++) setF64(box, k, 4 * f64at(lam, k) + 1);
  // the first basis: the cut, with ν_k where its row is over the limit, else the slack
  setI32(basis, 0, 2 * K);
  for (let k = 0; k < K; k++) setI32(basis, k + 1, f64at(cutG, k) > 0 ? k : K + k);
  const start = f64s(K);
  memory.copy(start, lam, (<usize>K) << 3);
  for (kelleyRounds = 0; kelleyRounds < KELLEY_ROUNDS && cutCount < MAX_CUTS; kelleyRounds++) {
    if (bestValue > dearest + 1e-9 * Math.max(1, Math.abs(dearest))) return false;
    if (!solveMaster()) break;
    if (masterValue - bestValue <= 1e-13 + 1e-12 * Math.abs(bestValue)) break;
    // the best λ may lie beyond the box: widen where λ presses on it (a flat dual does not get here)
    for (let k = 0; k < K; k++) if (f64at(masterLam, k) >= f64at(box, k) * (1 - 1e-12)) setF64(box, k, f64at(box, k) * 4);
    const value = lagrangian(scale, rhs, masterLam, cutCount++);
    if (value > bestValue) {
      bestValue = value;
      memory.copy(lam, masterLam, (<usize>K) << 3);
    }
  }
  return bestValue <= dearest + 1e-9 * Math.max(1, Math.abs(dearest));
}

/**
 * Step 2: multipliers λ ≥ 0 for the rows (the LP dual), into `lambda` unscaled. False when the LP
 * relaxation has no solution (then no policy exists).
 */
function lagrangeMultipliers(maxChoices: i32): bool {
  const scale = f64s(K), rhs = f64s(K), lam = zeros(K);
  for (let k = 0; k < K; k++) {
    const l = f64at(problemLimits, k);
    setF64(scale, k, l > 0 ? 1 / l : 1);
    setF64(rhs, k, l * f64at(scale, k));
  }
  coordinateAscent(scale, rhs, lam, maxChoices);
  const feasible = K == 1 || refineMultipliers(scale, rhs, lam);
  lambda = f64s(K);
  for (let k = 0; k < K; k++) setF64(lambda, k, f64at(lam, k) * f64at(scale, k));
  return feasible;
}

/**
 * Step 3: every undominated choice's reduced cost c + λ·u, each layer's choices in order of it
 * (byRc, with their ranks), the least per layer, and the LP bound Σ_i least_i − λ·limits.
 * `gapSlack` covers the rounding in these sums: a choice whose gap to its layer's least is within
 * δ + gapSlack is kept for a round at δ (see buildView).
 */
function reducedCosts(): void {
  const total = i32at(keptStart, N);
  rcOf = f64s(total); byRc = i32s(total); rankRc = i32s(total); minRc = f64s(N);
  let sum: f64 = 0, magnitude: f64 = 0;
  for (let i = 0; i < N; i++) {
    const ks = i32at(keptStart, i), m = i32at(keptStart, i + 1) - ks;
    let largest: f64 = 0;
    for (let t = 0; t < m; t++) {
      let v = f64at(keptCost, ks + t);
      for (let k = 0; k < K; k++) v += f64at(lambda, k) * f64at(keptUse, (ks + t) * K + k);
      setF64(rcOf, ks + t, v);
      largest = Math.max(largest, Math.abs(v));
    }
    orderBy(rcOf, ks, 1, m, byRc, ks);
    for (let r = 0; r < m; r++) setI32(rankRc, ks + i32at(byRc, ks + r), r);
    setF64(minRc, i, f64at(rcOf, ks + i32at(byRc, ks)));
    sum += f64at(minRc, i);
    magnitude += largest;
  }
  let priced: f64 = 0, roundingSlack: f64 = 0;
  for (let k = 0; k < K; k++) {
    priced += f64at(lambda, k) * f64at(problemLimits, k);
    roundingSlack += f64at(lambda, k) * rowTolerance(f64at(problemLimits, k));
  }
  rootBound = sum - priced;
  gapSlack = 4e-16 * <f64>(N + 4) * (magnitude + Math.abs(priced)) + roundingSlack + 1e-300;
  // the first round's δ: the FIRST_GAPS-th least gap of a choice to its layer's least (ties at 0
  // are the LP's fractional layers); the optimum lies a few such moves from the LP's policy
  const least = f64s(FIRST_GAPS);
  let kept = 0;
  for (let i = 0; i < N; i++) {
    const ks = i32at(keptStart, i), m = i32at(keptStart, i + 1) - ks;
    for (let r = 1; r < m; r++) {
      const g = f64at(rcOf, ks + i32at(byRc, ks + r)) - f64at(minRc, i);
      if (g <= gapSlack) continue;
      if (kept == FIRST_GAPS && g >= f64at(least, kept - 1)) break; // the layer's next are larger still
      let at = kept < FIRST_GAPS ? kept++ : kept - 1;
      while (at > 0 && f64at(least, at - 1) > g) { setF64(least, at, f64at(least, at - 1)); at--; }
      setF64(least, at, g);
    }
  }
  firstDelta = kept > 0 ? f64at(least, kept - 1) : 1e3 * gapSlack;
}
/** the first round's δ (see reducedCosts) */
let firstDelta: f64 = 0;

/**
 * Step 4: a first policy, from the Lagrangian's (each layer at its least reduced cost; of ties the
 * one using least, rows scaled by their limits), repaired while over a budget by the move that
 * costs least reduced cost per unit of excess removed, without pushing another row over. The LP
 * optimum differs from it in at most K layers, so a few moves usually do. False if none found.
 */
function greedyPolicy(): bool {
  const cur = i32s(N), use = zeros(K), scale = f64s(K);
  for (let k = 0; k < K; k++) { const l = f64at(problemLimits, k); setF64(scale, k, l > 0 ? 1 / l : 1); }
  let cost: f64 = 0;
  for (let i = 0; i < N; i++) {
    const ks = i32at(keptStart, i), m = i32at(keptStart, i + 1) - ks;
    let pickT = i32at(byRc, ks), least = Infinity;
    for (let r = 0; r < m; r++) {
      const t = i32at(byRc, ks + r);
      if (f64at(rcOf, ks + t) - f64at(minRc, i) > gapSlack) break;
      let u: f64 = 0;
      for (let k = 0; k < K; k++) u += f64at(keptUse, (ks + t) * K + k) * f64at(scale, k);
      if (u < least) { least = u; pickT = t; }
    }
    setI32(cur, i, pickT);
    cost += f64at(keptCost, ks + pickT);
    for (let k = 0; k < K; k++) setF64(use, k, f64at(use, k) + f64at(keptUse, (ks + pickT) * K + k));
  }
  for (let move = 0; move < 16 + 8 * K; move++) {
    let over = false;
    for (let k = 0; k < K; k++) if (f64at(use, k) > f64at(problemSlack, k)) over = true;
    if (!over) {
      if (!hasBest || cost < best - tolerance(best)) {
        best = cost;
        hasBest = true;
        memory.copy(bestKept, cur, (<usize>N) << 2);
      }
      return true;
    }
    let bestRatio = Infinity, moveLayer = -1, moveChoice = 0;
    for (let i = 0; i < N; i++) {
      const ks = i32at(keptStart, i), m = i32at(keptStart, i + 1) - ks, from = ks + i32at(cur, i);
      for (let t = 0; t < m; t++) {
        const c = ks + t;
        let removed: f64 = 0, ok = true;
        for (let k = 0; k < K && ok; k++) {
          const change = f64at(keptUse, c * K + k) - f64at(keptUse, from * K + k);
          if (f64at(use, k) > f64at(problemSlack, k)) removed -= change * f64at(scale, k);
          else ok = f64at(use, k) + change <= f64at(problemSlack, k);
        }
        if (!ok || removed <= 0) continue;
        const ratio = Math.max(0, f64at(rcOf, c) - f64at(rcOf, from)) / removed;
        if (ratio < bestRatio) { bestRatio = ratio; moveLayer = i; moveChoice = t; }
      }
    }
    if (moveLayer < 0) return false;
    const ks = i32at(keptStart, moveLayer), from = ks + i32at(cur, moveLayer), to = ks + moveChoice;
    cost += f64at(keptCost, to) - f64at(keptCost, from);
    for (let k = 0; k < K; k++) setF64(use, k, f64at(use, k) + f64at(keptUse, to * K + k) - f64at(keptUse, from * K + k));
    setI32(cur, moveLayer, moveChoice);
  }
  return false;
}

/** Layer a before layer b in search order: clear decisions (wide regret) first, then problem order. */
@inline function searchedBefore(regret: usize, a: i32, b: i32): bool {
  const ra = f64at(regret, a), rb = f64at(regret, b);
  return ra != rb ? ra > rb : a < b;
}

/** Sort i32 layer indices by searchedBefore (merge sort: thousands of layers). */
function sortLayers(items: usize, count: i32, regret: usize): void {
  const tmp = i32s(count);
  let src = items, dst = tmp;
  for (let width = 1; width < count; width *= 2) {
    for (let lo = 0; lo < count; lo += 2 * width) {
      const mid = min(lo + width, count), hi = min(lo + 2 * width, count);
      let i = lo, j = mid, o = lo;
      while (i < mid && j < hi) {
        if (searchedBefore(regret, i32at(src, j), i32at(src, i))) setI32(dst, o++, i32at(src, j++));
        else setI32(dst, o++, i32at(src, i++));
      }
      while (i < mid) setI32(dst, o++, i32at(src, i++));
      while (j < hi) setI32(dst, o++, i32at(src, j++));
    }
    const swap = src; src = dst; dst = swap;
  }
  if (src != items) memory.copy(items, src, (<usize>count) << 2);
}

/**
 * Reduced-cost fixing: a policy's cost is the LP bound plus Σ_i (its reduced cost at layer i less
 * the layer's least) plus λ·(its unused budget), each term ≥ 0. So a policy costing less than
 * rootBound + δ takes at every layer a choice within δ of the layer's least. The round at δ keeps
 * those choices; a layer left with one is fixed (its cost and use go to fixedCost / fixedUse, its
 * choice to fixedKept) and the search visits only the others, in search order (clear decisions
 * first, close calls last, where the short suffix's bounds are tight): choiceStart, rcP, costP,
 * useP, keptP, byUseP, the suffix sums, and limits / slack less the fixed use. On LLM-like tables
 * of 448 layers a round near the optimum searches 30–100. Returns whether every choice is kept
 * (then the round decides the problem).
 */
function buildView(delta: f64): bool {
  const regret = f64s(N), count = i32s(N), core = i32s(N);
  fixedKept = i32s(N); fixedUse = zeros(K); fixedCost = 0;
  let all = true, total = 0;
  n = 0;
  for (let i = 0; i < N; i++) {
    const ks = i32at(keptStart, i), m = i32at(keptStart, i + 1) - ks;
    let c = 1;
    while (c < m && f64at(rcOf, ks + i32at(byRc, ks + c)) - f64at(minRc, i) <= delta + gapSlack) c++;
    if (c < m) all = false;
    setI32(count, i, c);
    if (c == 1) {
      const t = i32at(byRc, ks);
      setI32(fixedKept, i, t);
      fixedCost += f64at(keptCost, ks + t);
      for (let k = 0; k < K; k++) setF64(fixedUse, k, f64at(fixedUse, k) + f64at(keptUse, (ks + t) * K + k));
    } else {
      setF64(regret, i, f64at(rcOf, ks + i32at(byRc, ks + 1)) - f64at(minRc, i));
      setI32(core, n++, i);
      total += c;
    }
  }
  sortLayers(core, n, regret);
  depthLayer = core;
  choiceStart = i32s(n + 1);
  rcP = f64s(total); costP = f64s(total); useP = f64s(total * K); keptP = i32s(total);
  byUseP = i32s(K);
  for (let k = 0; k < K; k++) setI32(byUseP, k, <i32>i32s(total));
  let at = 0;
  for (let d = 0; d < n; d++) {
    setI32(choiceStart, d, at);
    const i = i32at(depthLayer, d);
    const ks = i32at(keptStart, i), m = i32at(keptStart, i + 1) - ks, c = i32at(count, i);
    for (let r = 0; r < c; r++) {
      const t = i32at(byRc, ks + r);
      setI32(keptP, at + r, t);
      setF64(costP, at + r, f64at(keptCost, ks + t));
      setF64(rcP, at + r, f64at(rcOf, ks + t));
      for (let k = 0; k < K; k++) setF64(useP, (at + r) * K + k, f64at(keptUse, (ks + t) * K + k));
    }
    // per row, the kept choices in order of use, as ranks in reduced-cost order
    for (let k = 0; k < K; k++) {
      const from = <usize>i32at(keptByUse, k), to = <usize>i32at(byUseP, k);
      let o = 0;
      for (let r = 0; r < m; r++) {
        const rank = i32at(rankRc, ks + i32at(from, ks + r));
        if (rank < c) setI32(to, at + o++, rank);
      }
    }
    at += c;
  }
  setI32(choiceStart, n, at);
  suffixRc = zeros(n + 1);
  suffixUse = zeros((n + 1) * K);
  for (let d = n - 1; d >= 0; d--) {
    const first = i32at(choiceStart, d), m = i32at(choiceStart, d + 1) - first;
    setF64(suffixRc, d, f64at(suffixRc, d + 1) + f64at(rcP, first));
    for (let k = 0; k < K; k++) {
      let lo = Infinity;
      for (let t = 0; t < m; t++) lo = Math.min(lo, f64at(useP, (first + t) * K + k));
      setF64(suffixUse, d * K + k, f64at(suffixUse, (d + 1) * K + k) + lo);
    }
  }
  limits = f64s(K); slack = f64s(K);
  sumLambda = 0;
  for (let k = 0; k < K; k++) {
    setF64(limits, k, f64at(problemLimits, k) - f64at(fixedUse, k));
    setF64(slack, k, f64at(problemSlack, k) - f64at(fixedUse, k));
    sumLambda += f64at(lambda, k) * f64at(limits, k);
  }
  return all;
}

/**
 * Row e's LP table: for the layers from depth d on, the LP relaxation of min Σ c'_ij subject to
 * Σ u_ij ≤ R (row e; c' = cost plus the other rows priced by λ) as a function of R. Per layer
 * the LP walks the lower convex hull of (use, cost) from its least-use point; over all layers it
 * takes hull segments in order of cost saved per unit of use. Each suffix keeps its segments
 * sorted, with prefix sums and cells that say where to start walking them for a given R. The
 * tables grow with the square of the layers searched: past `budget` bytes only the deepest
 * depths get one (LP_FROM), and shallower partial policies are bounded by reduced costs alone.
 */
function buildLpTable(e: i32, maxChoices: i32, budget: f64): void {
  const lam = f64s(K);
  for (let k = 0; k < K; k++) setF64(lam, k, k == e ? 0 : f64at(lambda, k));
  const baseCost = zeros(n + 1), baseUse = zeros(n + 1), perDepth = i32s(n);
  const total = i32at(choiceStart, n);
  const du = f64s(total), dc = f64s(total), slope = f64s(total), gapOf = f64s(total);
  const u = f64s(maxChoices), c = f64s(maxChoices), hull = i32s(maxChoices);
  const byUse = <usize>i32at(byUseP, e);
  let segments = 0;
  for (let d = n - 1; d >= 0; d--) {
    const first = i32at(choiceStart, d), m = i32at(choiceStart, d + 1) - first;
    for (let t = 0; t < m; t++) {
      setF64(u, t, f64at(useP, (first + t) * K + e));
      let v = f64at(costP, first + t);
      for (let k = 0; k < K; k++) v += f64at(lam, k) * f64at(useP, (first + t) * K + k);
      setF64(c, t, v);
    }
    const last = cheapestOnHull(c, hull, lowerHull(u, c, byUse, first, m, hull));
    setF64(baseCost, d, f64at(baseCost, d + 1) + f64at(c, i32at(hull, 0)));
    setF64(baseUse, d, f64at(baseUse, d + 1) + f64at(u, i32at(hull, 0)));
    for (let h = 1; h <= last; h++) {
      const p = i32at(hull, h), q = i32at(hull, h - 1);
      const sl = (f64at(c, p) - f64at(c, q)) / (f64at(u, p) - f64at(u, q));
      setF64(du, segments, f64at(u, p) - f64at(u, q));
      setF64(dc, segments, f64at(c, p) - f64at(c, q));
      setF64(slope, segments, sl);
      // the least height above the segment of a choice strictly between its ends (none: +inf)
      let gap = Infinity;
      for (let t = 0; t < m; t++) {
        if (f64at(u, t) > f64at(u, q) && f64at(u, t) < f64at(u, p)) {
          gap = Math.min(gap, f64at(c, t) - (f64at(c, q) + (f64at(u, t) - f64at(u, q)) * sl));
        }
      }
      setF64(gapOf, segments++, Math.max(0, gap));
    }
    setI32(perDepth, d, last);
  }
  const offset = i32s(n + 1), count = i32s(n + 1);
  let size = 0, from = n + 1;
  for (let d = n; d >= 0; d--) {
    setI32(count, d, d < n ? i32at(count, d + 1) + i32at(perDepth, d) : 0);
    if (<f64>(size + i32at(count, d) + 1) * 32 > budget) break;
    setI32(offset, d, size);
    size += i32at(count, d) + 1;
    from = d;
  }
  const pu = f64s(size), pc = f64s(size), sl = zeros(size), gaps = zeros(size);
  // Segments were pushed layer by layer from the last, each layer's in order of slope (a convex
  // hull), so layer d's sit at [count[d+1], count[d]) and depth d's list is depth d+1's with layer
  // d's merged in: no sort needed.
  let list = i32s(segments + 1), merged = i32s(segments + 1);
  let listSize = 0;
  for (let d = n; d >= from; d--) {
    if (d < n) {
      const lo = i32at(count, d + 1), hi = i32at(count, d);
      let i = 0, j = lo, o = 0;
      while (i < listSize && j < hi) {
        if (f64at(slope, i32at(list, i)) <= f64at(slope, j)) setI32(merged, o++, i32at(list, i++));
        else setI32(merged, o++, j++);
      }
      while (i < listSize) setI32(merged, o++, i32at(list, i++));
      while (j < hi) setI32(merged, o++, j++);
      const swap = list; list = merged; merged = swap;
      listSize = o;
    }
    let at = i32at(offset, d);
    setF64(pu, at, 0); setF64(pc, at, 0);
    for (let r = 0; r < listSize; r++, at++) {
      const i = i32at(list, r);
      setF64(sl, at, f64at(slope, i));
      setF64(gaps, at, f64at(gapOf, i));
      setF64(pu, at + 1, f64at(pu, at) + f64at(du, i));
      setF64(pc, at + 1, f64at(pc, at) + f64at(dc, i));
    }
  }
  // per depth, cells of equal use: where the walk along the segments starts for a budget in that cell
  const cellScale = f64s(n + 1), cellStart = i32s((n + 1) * CELLS);
  for (let d = from; d <= n; d++) {
    const off = i32at(offset, d), m = i32at(count, d);
    const width = f64at(pu, off + m) / <f64>CELLS;
    setF64(cellScale, d, width > 0 ? 1 / width : 0);
    let p = 0;
    for (let cell = 0; cell < CELLS; cell++) {
      while (p < m && f64at(pu, off + p + 1) <= <f64>cell * width) p++;
      setI32(cellStart, d * CELLS + cell, p);
    }
  }
  const t = lpTable(e);
  store<u32>(t, <u32>baseUse, LP_BASE_USE); store<u32>(t, <u32>baseCost, LP_BASE_COST);
  store<u32>(t, <u32>offset, LP_OFFSET); store<u32>(t, <u32>count, LP_COUNT);
  store<u32>(t, <u32>pu, LP_PREF_USE); store<u32>(t, <u32>pc, LP_PREF_COST); store<u32>(t, <u32>sl, LP_SLOPES);
  store<u32>(t, <u32>cellScale, LP_CELL_SCALE); store<u32>(t, <u32>cellStart, LP_CELL_START); store<u32>(t, <u32>gaps, LP_GAPS);
  store<i32>(t, from, LP_FROM);
}

/** Work arrays of a view (see buildView): the dive's path and sums, the sweeps' way back. */
function viewArrays(): void {
  pick = i32s(n + 1); bestPick = i32s(n + 1); used = zeros(K); parents = i32s(n + 1); picks = i32s(n + 1);
  rcAt = f64s(n + 1); costAt = f64s(n + 1);
  levelA = 0; levelB = 0; kids = 0; runsCapacity = 0; orderCapacity = 0; stairCapacity = 0;
}

/** Nodes of this round's dive (its budget; `nodes` counts all rounds'). */
let diveNodes: i32 = 0;

/**
 * One round on the view buildView made: the LP tables, a dive for any policy cheaper than the
 * incumbent (so a search stopped by a limit still improves its answer), swaps on what it found,
 * then, unless the dive searched everything, a sweep below `level` (or the incumbent, if lower).
 * It finds the cheapest policy below `level` if there is one (every such policy is in the view).
 * False when the time ran out.
 */
function searchRound(level: f64, maxChoices: i32): bool {
  const incumbent = (hasBest ? best - tolerance(best) : Infinity) - fixedCost;
  cutoff = incumbent;
  // the fixed layers alone, or with every searched layer at its least, over a budget: nothing here
  for (let k = 0; k < K; k++) if (f64at(suffixUse, k) > f64at(slack, k)) return true;
  if (n == 0) {
    if (0 < cutoff) record(0, pick);
    return true;
  }
  const budget = Math.min(<f64>memoryLimit / 4, <f64>(256 << 20)) / <f64>K;
  for (let e = 0; e < K; e++) buildLpTable(e, maxChoices, budget);
  for (let k = 0; k < K; k++) setF64(used, k, 0);
  diveNodes = 0; nodesSinceIncumbent = 0; stopped = 0;
  dive();
  if (foundInRound) {
    // the closer the incumbent to the optimum, the fewer partial policies the sweep keeps
    const p = i32s(n);
    memory.copy(p, bestPick, (<usize>n) << 2);
    const cost = improveBySwaps(p, best - fixedCost, best - rootBound);
    if (cost < cutoff) record(cost, p);
  }
  if (stopped == 0) return true;
  cutoff = Math.min(cutoff, level - fixedCost);
  sweeps++;
  return sweep();
}

/**
 * Solve the problem: `layers` layers whose choices start at i32 starts[i] in f64 cost and use
 * (times `rows`), budgets f64 limits[rows]. Returns 0 when done (optimal, or infeasible when no
 * policy was found: `found`), 1 when out of time (`found` says whether a policy was found;
 * `provenBound` what no policy undercuts). Past the memory limit it traps with `memoryExhausted`
 * set, and the same holds. `writeBest` puts the policy at `choicePointer`.
 * `sameChoices`: the choices are the last solve's, kept by `resetKeepingChoices`.
 *
 * Steps: 1. undominated choices; 2. the LP bound's multipliers; 3. reduced costs; 4. a first
 * policy and swaps; 5. rounds at cutoffs widening from near the LP bound, each on the layers whose
 * choices reduced-cost fixing leaves open (buildView), until one finds a policy below its cutoff
 * (then optimal: every cheaper policy was in its view) or reaches the incumbent.
 */
export function solve(layers: i32, rows: i32, starts: usize, cost: usize, use: usize, limitsP: usize, deadlineMs: f64, sameChoices: bool): i32 {
  const t0 = now();
  started = t0; lastProgress = t0;
  N = layers; K = rows; deadline = deadlineMs;
  best = Infinity; cutoff = Infinity; hasBest = false; outOfMemory = false; foundInRound = false;
  nodes = 0; states = 0; sweeps = 0; rounds = 0; kelleyRounds = 0; rootBound = 0; provenBound = -Infinity; n = 0; depthNow = 0;
  if (!sameChoices) {
    undominated(starts, cost, use);
    keptTop = heapTop;
  }
  choice = i32s(N);
  bestKept = i32s(N);
  // the limits and their rounding slack from each layer's least use (see undominated)
  problemLimits = f64s(K);
  problemSlack = f64s(K);
  for (let k = 0; k < K; k++) {
    const limit = f64at(limitsP, k);
    setF64(problemLimits, k, limit - f64at(leastUse, k));
    setF64(problemSlack, k, limit + rowTolerance(limit) - f64at(leastUse, k));
  }
  let maxChoices = 0;
  for (let i = 0; i < N; i++) {
    const m = i32at(keptStart, i + 1) - i32at(keptStart, i);
    if (m == 0) return 0; // a layer with no choice: no policy
    maxChoices = max(maxChoices, m);
  }
  // Each row on its own: if even the least use of every layer overflows, no policy exists.
  for (let k = 0; k < K; k++) if (f64at(problemSlack, k) < 0) return 0;
  if (!lagrangeMultipliers(maxChoices)) return 0;
  reducedCosts();
  provenBound = rootBound;
  lpTables = take(K * LP_BYTES);
  boundF = f64s(K * BOUND_F);
  boundI = i32s(K * BOUND_I);
  rowOrder = i32s(K);
  prunes = i32s(K);
  for (let k = 0; k < K; k++) { setI32(rowOrder, k, k); setI32(prunes, k, 0); }
  setupMs = now() - t0;

  greedyPolicy();
  const mark = heapTop;
  let delta = hasBest ? Math.min((best - rootBound) / WIDENING_START, firstDelta) : firstDelta;
  while (true) {
    heapTop = mark;
    rounds++;
    const statesBefore = states;
    const cap = hasBest ? best - tolerance(best) : Infinity;
    let level = Math.min(rootBound + delta, cap);
    // a view of every choice decides the problem: search it up to the incumbent
    if (buildView(level - rootBound)) level = cap;
    viewArrays();
    foundInRound = false;
    if (!searchRound(level, maxChoices)) return 1;
    if ((hasBest && best < level) || level == cap) return 0;
    provenBound = Math.max(provenBound, level);
    // a cheap round was far below the optimum: widen faster
    const work = states - statesBefore + <f64>diveNodes;
    delta *= work < CHEAP_ROUND ? FAST_WIDENING : WIDENING;
  }
  return 0;
}


