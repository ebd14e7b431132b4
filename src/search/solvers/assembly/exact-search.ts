// AssemblyScript, compiled to WebAssembly by the build (asc): the exact solver's five steps, on a
// problem that solvers/exact.ts copies into this module's memory (see its comment for the method).
//
// Why WebAssembly: in JavaScript the solver ran ~10x slower in a fresh process than once the JIT
// had optimised it (125 ms against 9 ms on ResNet-50 W3A4/CR12.2), and every sweep worker paid
// that warm-up again. WebAssembly is compiled before it runs. The arithmetic is in the order the
// JavaScript solver used, so results (and the choice among equal optima) did not change.
//
// Memory: a bump allocator, reset by the caller before each solve; no garbage collector.

@external("env", "now")
declare function now(): f64;

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

/** `bytes` of memory, 16-byte aligned, growing the memory when needed. */
export function alloc(bytes: i32): usize {
  if (heapTop == 0) reset();
  const p = (heapTop + 15) & ~15;
  const end = p + <usize>bytes;
  const have = (<usize>memory.size()) << 16;
  if (end > have) {
    const pages = <i32>((end - have + 0xffff) >> 16);
    if (memory.grow(pages) < 0) unreachable();
  }
  heapTop = end;
  return p;
}

@inline function f64at(p: usize, i: i32): f64 { return load<f64>(p + ((<usize>i) << 3)); }
@inline function setF64(p: usize, i: i32, v: f64): void { store<f64>(p + ((<usize>i) << 3), v); }
@inline function i32at(p: usize, i: i32): i32 { return load<i32>(p + ((<usize>i) << 2)); }
@inline function setI32(p: usize, i: i32, v: i32): void { store<i32>(p + ((<usize>i) << 2), v); }
@inline function f64s(count: i32): usize { return alloc(count << 3); }
@inline function i32s(count: i32): usize { return alloc(count << 2); }
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

/** Nodes the dive may spend before the sweep takes over. */
const DIVE_NODES: i32 = 2048;
/** Nodes the dive may spend once it has an incumbent: the swaps improve it more cheaply. */
const DIVE_NODES_AFTER_INCUMBENT: i32 = 256;
/**
 * The narrowed sweeps' cutoffs: at 1/WIDENING_START of the incumbent's distance from the root
 * bound, then WIDENING times farther each (0.4, 0.64, then the incumbent). Chosen on the 1,000-point
 * ResNet-50 bench sweep: 2.56M partial policies in all, against 2.6–3.4M for 2/1.6, 1.6/1.6,
 * 3/1.5, 2/2 and 1.4/1.4, and 6.48M without narrowing; on W3A4/CR12.2, where the incumbent is
 * already optimal, narrowing costs 24% more (7,296 against 5,869).
 */
const WIDENING_START: f64 = 2.5;
const WIDENING: f64 = 1.6;
/** Lookup cells per depth in the LP tables. */
const CELLS: i32 = 64;

let n: i32 = 0;
let K: i32 = 0;
/** per depth (layers in search order): i32[n + 1] where its choices start in rc, cost, use (times K), idx */
let choiceStart: usize = 0;
let rcP: usize = 0;
let costP: usize = 0;
let useP: usize = 0;
/** per depth's choice: its index among the layer's choices in the problem */
let idxP: usize = 0;
/** per depth: the layer's index in the problem */
let depthLayer: usize = 0;
/** per row k, i32 pointer: each depth's choices in order of use of row k (indices from choiceStart) */
let byUseP: usize = 0;
/** f64[n + 1] and f64[(n + 1) * K]: least reduced cost and least use per row from depth d on */
let suffixRc: usize = 0;
let suffixUse: usize = 0;
let limits: usize = 0;
let slack: usize = 0;
let lambda: usize = 0;
let sumLambda: f64 = 0;
let rootBound: f64 = 0;
let deadline: f64 = Infinity;
/** per row, a record of pointers to its LP tables (see lpTable), at these byte offsets */
let lpTables: usize = 0;
const LP_BASE_USE = 0, LP_BASE_COST = 4, LP_OFFSET = 8, LP_COUNT = 12, LP_PREF_USE = 16, LP_PREF_COST = 20,
  LP_SLOPES = 24, LP_CELL_SCALE = 28, LP_CELL_START = 32, LP_GAPS = 36, LP_BYTES = 40;
@inline function lpTable(e: i32): usize { return lpTables + <usize>(e * LP_BYTES); }
@inline function lpArray(t: usize, field: usize): usize { return <usize>load<u32>(t + field); }
let setupMs: f64 = 0;
/** i32[n]: the chosen choice of each layer, in problem order */
let choice: usize = 0;

export function rootBoundValue(): f64 { return rootBound; }
export function setupTime(): f64 { return setupMs; }
export function choicePointer(): usize { return choice; }

// ---- search state ------------------------------------------------------------------------------

let best: f64 = Infinity;
/** improvements below rounding level are not improvements (keeps the first optimum found) */
let cutoff: f64 = Infinity;
let hasBest = false;
let bestPick: usize = 0;
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

function record(cost: f64, from: usize): void {
  best = cost;
  cutoff = cost - 1e-12 * Math.max(1, Math.abs(cost));
  memory.copy(bestPick, from, (<usize>n) << 2);
  hasBest = true;
}

// ---- bounds --------------------------------------------------------------------------------------

// Per row, depth d's share of its LP table, read once per depth instead of once per child
// (prepareBounds): f64s at boundF, then i32s (pointers into the tables, and the segment count) at
// boundI, at these indices.
const B_BASE_USE = 0, B_BASE_COST = 1, B_TOTAL_USE = 2, B_TOTAL_COST = 3, B_CELL_SCALE = 4, BOUND_F = 5;
const B_PREF_USE = 0, B_PREF_COST = 1, B_SLOPES = 2, B_CELLS = 3, B_COUNT = 4, B_GAPS = 5, BOUND_I = 6;
let boundF: usize = 0, boundI: usize = 0;

/** Load depth d's part of every row's LP table for `exceeds`. */
function prepareBounds(d: i32): void {
  for (let e = 0; e < K; e++) {
    const t = lpTable(e);
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
  const free = R - f64at(f, B_BASE_USE);
  if (free < -rowTolerance(R)) return true;
  const baseCost = f64at(f, B_BASE_COST), totalUse = f64at(f, B_TOTAL_USE);
  if (free >= totalUse) return baseCost + f64at(f, B_TOTAL_COST) >= level;
  const pu = <usize>i32at(i, B_PREF_USE), pc = <usize>i32at(i, B_PREF_COST), sl = <usize>i32at(i, B_SLOPES);
  const m = i32at(i, B_COUNT);
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

// ---- step 3: the dive ----------------------------------------------------------------------------

function dive(d: i32, rcSum: f64, costSum: f64): void {
  if (d == n) {
    if (costSum < cutoff) record(costSum, pick);
    return;
  }
  const first = i32at(choiceStart, d), m = i32at(choiceStart, d + 1) - first;
  const rest = f64at(suffixRc, d + 1) - sumLambda;
  const next = (d + 1) * K;
  for (let t = 0; t < m; t++) {
    const c = first + t;
    const rc = rcSum + f64at(rcP, c);
    if (rc + rest >= cutoff) break; // sorted by reduced cost: no later child does better
    let fits = true;
    for (let k = 0; k < K; k++) {
      if (f64at(used, k) + f64at(useP, c * K + k) + f64at(suffixUse, next + k) > f64at(slack, k)) { fits = false; break; }
    }
    if (!fits) continue;
    nodes++;
    if (hasBest) nodesSinceIncumbent++;
    if (nodes >= DIVE_NODES || (hasBest && nodesSinceIncumbent >= DIVE_NODES_AFTER_INCUMBENT)) {
      stopped = 1;
      return;
    }
    for (let k = 0; k < K; k++) setF64(used, k, f64at(used, k) + f64at(useP, c * K + k));
    const cost = costSum + f64at(costP, c);
    prepareBounds(d + 1); // the recursion below loads other depths
    if (!pruned(cost, used)) {
      setI32(pick, d, t);
      dive(d + 1, rc, cost);
    }
    for (let k = 0; k < K; k++) setF64(used, k, f64at(used, k) - f64at(useP, c * K + k));
    if (stopped != 0) return;
  }
}

// ---- step 4: swaps -------------------------------------------------------------------------------

/**
 * Improve the policy in `p` by moving one layer, or two at once, to another choice whose reduced
 * cost is within `gap` of the layer's best, while it stays within every row and gets cheaper;
 * until no such move helps. Returns its cost.
 */
/** Move layer d of policy `p` to choice t, updating its use per row; returns the change in cost. */
@inline function moveTo(p: usize, use: usize, d: i32, t: i32): f64 {
  const first = i32at(choiceStart, d), from = i32at(p, d);
  for (let k = 0; k < K; k++) setF64(use, k, f64at(use, k) + (f64at(useP, (first + t) * K + k) - f64at(useP, (first + from) * K + k)));
  setI32(p, d, t);
  return f64at(costP, first + t) - f64at(costP, first + from);
}

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
        for (let j = i + 1; j < n; j++) {
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

// ---- step 5: sweeps ------------------------------------------------------------------------------

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
  while (cap < need) cap *= 2;
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
 * of equal ones the first), in lexicographic order.
 */
function keepNondominated(to: usize, choices: i32): void {
  const m = lsize(kids);
  store<i32>(to, 0, L_SIZE);
  if (m == 0) return;
  const ord = sorted(choices);
  ensure(to, m);
  const cost = kidCost, use = kidUse;
  if (K == 1) {
    let least = Infinity;
    for (let r = 0; r < m; r++) {
      const i = i32at(ord, r);
      if (f64at(cost, i) < least) { keep(to, i); least = f64at(cost, i); }
    }
  } else if (K == 2) {
    // In first-row order, a child is dominated when an earlier one has no more second-row use and
    // no more cost: the staircase of earlier children's (second-row use, cost), cost falling.
    if (stairCapacity < m + 1) {
      stairCapacity = (m + 1) * 2;
      stairUse = f64s(stairCapacity);
      stairCost = f64s(stairCapacity);
    }
    let h = 0;
    for (let r = 0; r < m; r++) {
      const i = i32at(ord, r);
      const v = f64at(use, i * 2 + 1), c = f64at(cost, i);
      let lo = 0, hi = h; // first step with use > v
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (f64at(stairUse, mid) <= v) lo = mid + 1; else hi = mid;
      }
      if (lo > 0 && f64at(stairCost, lo - 1) <= c) continue;
      keep(to, i);
      // steps from lo on with cost >= c are now dominated by this child
      let q = lo;
      while (q < h && f64at(stairCost, q) >= c) q++;
      if (q == lo) {
        const bytes = (<usize>(h - lo)) << 3, at = (<usize>lo) << 3;
        memory.copy(stairUse + at + 8, stairUse + at, bytes);
        memory.copy(stairCost + at + 8, stairCost + at, bytes);
        h++;
      } else if (q > lo + 1) {
        const gap = q - lo - 1;
        const bytes = (<usize>(h - q)) << 3, from = (<usize>q) << 3, to = (<usize>(q - gap)) << 3;
        memory.copy(stairUse + to, stairUse + from, bytes);
        memory.copy(stairCost + to, stairCost + from, bytes);
        h -= gap;
      }
      setF64(stairUse, lo, v);
      setF64(stairCost, lo, c);
    }
  } else {
    // three or more rows (latency tables): pairwise against the survivors so far
    const toCost = larr(to, L_COST), toUse = larr(to, L_USE);
    for (let r = 0; r < m; r++) {
      const i = i32at(ord, r);
      let dominated = false;
      for (let p = 0; p < lsize(to) && !dominated; p++) {
        if (f64at(toCost, p) > f64at(cost, i)) continue;
        let le = true;
        for (let k = 0; k < K && le; k++) le = f64at(toUse, p * K + k) <= f64at(use, i * K + k);
        dominated = le;
      }
      if (!dominated) keep(to, i);
    }
  }
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
    if (now() > deadline) return false;
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
    keepNondominated(to, m);
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

/**
 * Sweeps with cutoffs from close to the root bound, widening, until one finds a policy (then
 * optimal, see exact.ts) or the cutoff reaches the incumbent. False when the time ran out.
 */
function sweepWidening(): bool {
  if (hasBest) {
    const incumbent = cutoff;
    const foundCost = best;
    for (let gap = (incumbent - rootBound) / WIDENING_START; rootBound + gap < incumbent; gap *= WIDENING) {
      cutoff = rootBound + gap;
      sweeps++;
      if (!sweep()) return false;
      if (best < foundCost) return true;
    }
    cutoff = incumbent;
  }
  sweeps++;
  return sweep();
}

// ---- steps 1-2: the prepared problem ------------------------------------------------------------

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
  const total = i32at(starts, n);
  keptStart = i32s(n + 1);
  keptIdx = i32s(total); keptCost = f64s(total); keptUse = f64s(total * K);
  let kept = 0;
  for (let i = 0; i < n; i++) {
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
  setI32(keptStart, n, kept);
  keptByUse = i32s(K);
  for (let k = 0; k < K; k++) {
    const order = i32s(kept);
    setI32(keptByUse, k, <i32>order);
    for (let i = 0; i < n; i++) {
      const ks = i32at(keptStart, i);
      orderBy(keptUse, ks * K + k, K, i32at(keptStart, i + 1) - ks, order, ks);
    }
  }
}

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
  for (let i = 0; i < n; i++) {
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
 * Step 2: multipliers λ ≥ 0 for the Lagrangian dual, by cyclic coordinate ascent with an exact
 * line search per row, on rows scaled by their limits; written to `lambda` unscaled.
 */
function lagrangeMultipliers(maxChoices: i32): void {
  const scale = f64s(K), rhs = f64s(K), lam = zeros(K);
  for (let k = 0; k < K; k++) {
    const l = f64at(limits, k);
    setF64(scale, k, l > 0 ? 1 / l : 1);
    setF64(rhs, k, l * f64at(scale, k));
  }
  const total = n * maxChoices;
  eventT = f64s(total); eventDrop = f64s(total); eventIdx = i32s(total);
  workU = f64s(maxChoices); workBase = f64s(maxChoices); workHull = i32s(maxChoices);
  let last = -Infinity;
  for (let round = 0; round < 3; round++) {
    for (let k = 0; k < K; k++) setF64(lam, k, lineMaximum(scale, lam, k, f64at(rhs, k)));
    let value: f64 = 0;
    for (let k = 0; k < K; k++) value -= f64at(lam, k) * f64at(rhs, k);
    for (let i = 0; i < n; i++) {
      const ks = i32at(keptStart, i), m = i32at(keptStart, i + 1) - ks;
      let least = Infinity;
      for (let t = 0; t < m; t++) {
        let v = f64at(keptCost, ks + t);
        for (let k = 0; k < K; k++) v += f64at(lam, k) * f64at(keptUse, (ks + t) * K + k) * f64at(scale, k);
        if (v < least) least = v;
      }
      value += least;
    }
    if (value <= last + 1e-12 * Math.max(1, Math.abs(value))) break;
    last = value;
  }
  lambda = f64s(K);
  sumLambda = 0;
  for (let k = 0; k < K; k++) {
    setF64(lambda, k, f64at(lam, k) * f64at(scale, k));
    sumLambda += f64at(lambda, k) * f64at(limits, k);
  }
}

/** Layer a before layer b in search order: clear decisions (wide regret) first, then problem order. */
function searchedBefore(regret: usize, a: i32, b: i32): bool {
  const ra = f64at(regret, a), rb = f64at(regret, b);
  return ra != rb ? ra > rb : a < b;
}

/**
 * Every layer's kept choices in order of reduced cost, layers in search order (close calls last,
 * where the bounds of the short suffix are tight), into choiceStart, rcP, costP, useP, idxP,
 * byUseP; then the suffix sums.
 */
function orderLayers(): void {
  const total = i32at(keptStart, n);
  const rcOf = f64s(total), byRc = i32s(total), regret = f64s(n);
  for (let i = 0; i < n; i++) {
    const ks = i32at(keptStart, i), m = i32at(keptStart, i + 1) - ks;
    for (let t = 0; t < m; t++) {
      let v = f64at(keptCost, ks + t);
      for (let k = 0; k < K; k++) v += f64at(lambda, k) * f64at(keptUse, (ks + t) * K + k);
      setF64(rcOf, ks + t, v);
    }
    orderBy(rcOf, ks, 1, m, byRc, ks);
    setF64(regret, i, m > 1 ? f64at(rcOf, ks + i32at(byRc, ks + 1)) - f64at(rcOf, ks + i32at(byRc, ks)) : Infinity);
  }
  depthLayer = i32s(n);
  for (let i = 0; i < n; i++) {
    let r = i;
    while (r > 0 && searchedBefore(regret, i, i32at(depthLayer, r - 1))) { setI32(depthLayer, r, i32at(depthLayer, r - 1)); r--; }
    setI32(depthLayer, r, i);
  }
  choiceStart = i32s(n + 1);
  rcP = f64s(total); costP = f64s(total); useP = f64s(total * K); idxP = i32s(total);
  byUseP = i32s(K);
  for (let k = 0; k < K; k++) setI32(byUseP, k, <i32>i32s(total));
  const rank = i32s(total);
  let at = 0;
  for (let d = 0; d < n; d++) {
    setI32(choiceStart, d, at);
    const i = i32at(depthLayer, d);
    const ks = i32at(keptStart, i), m = i32at(keptStart, i + 1) - ks;
    for (let r = 0; r < m; r++) {
      const t = i32at(byRc, ks + r);
      setI32(rank, ks + t, r);
      setI32(idxP, at + r, i32at(keptIdx, ks + t));
      setF64(costP, at + r, f64at(keptCost, ks + t));
      setF64(rcP, at + r, f64at(rcOf, ks + t));
      for (let k = 0; k < K; k++) setF64(useP, (at + r) * K + k, f64at(keptUse, (ks + t) * K + k));
    }
    for (let k = 0; k < K; k++) {
      const from = <usize>i32at(keptByUse, k), to = <usize>i32at(byUseP, k);
      for (let r = 0; r < m; r++) setI32(to, at + r, i32at(rank, ks + i32at(from, ks + r)));
    }
    at += m;
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
}

/**
 * Row e's LP table: for the layers from depth d on, the LP relaxation of min Σ c'_ij subject to
 * Σ u_ij ≤ R (row e; c' = cost plus the other rows priced by λ) as a function of R. Per layer
 * the LP walks the lower convex hull of (use, cost) from its least-use point; over all layers it
 * takes hull segments in order of cost saved per unit of use. Each suffix keeps its segments
 * sorted, with prefix sums and cells that say where to start walking them for a given R.
 */
function buildLpTable(e: i32, maxChoices: i32): void {
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
  let size = 0;
  for (let d = n; d >= 0; d--) {
    setI32(count, d, d < n ? i32at(count, d + 1) + i32at(perDepth, d) : 0);
    setI32(offset, d, size);
    size += i32at(count, d) + 1;
  }
  const pu = f64s(size), pc = f64s(size), sl = zeros(size), gaps = zeros(size);
  // Segments were pushed layer by layer from the last, each layer's in order of slope (a convex
  // hull), so layer d's sit at [count[d+1], count[d]) and depth d's list is depth d+1's with layer
  // d's merged in: no sort needed.
  let list = i32s(segments + 1), merged = i32s(segments + 1);
  let listSize = 0;
  for (let d = n; d >= 0; d--) {
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
  for (let d = 0; d <= n; d++) {
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
}

/**
 * Solve the problem: `layers` layers whose choices start at i32 starts[i] in f64 cost and use
 * (times `rows`), budgets f64 limits[rows]. Returns 0 when done (optimal, or infeasible when no
 * policy was found: `found`), 1 when out of time (`found` says whether a policy is in `choice`).
 * `sameChoices`: the choices are the last solve's, kept by `resetKeepingChoices`.
 */
export function solve(layers: i32, rows: i32, starts: usize, cost: usize, use: usize, limitsP: usize, deadlineMs: f64, sameChoices: bool): i32 {
  const t0 = now();
  n = layers; K = rows; limits = limitsP; deadline = deadlineMs;
  best = Infinity; cutoff = Infinity; hasBest = false;
  nodes = 0; nodesSinceIncumbent = 0; states = 0; sweeps = 0; stopped = 0; rootBound = 0;
  levelA = 0; levelB = 0; kids = 0; runsCapacity = 0; orderCapacity = 0; stairCapacity = 0;
  choice = i32s(n);
  slack = f64s(K);
  for (let k = 0; k < K; k++) setF64(slack, k, f64at(limits, k) + rowTolerance(f64at(limits, k)));
  if (!sameChoices) {
    undominated(starts, cost, use);
    keptTop = heapTop;
  }
  let maxChoices = 0;
  for (let i = 0; i < n; i++) {
    const m = i32at(keptStart, i + 1) - i32at(keptStart, i);
    if (m == 0) return 0; // a layer with no choice: no policy
    maxChoices = max(maxChoices, m);
  }
  lagrangeMultipliers(maxChoices);
  orderLayers();
  // Each row on its own: if even the least use of every layer overflows, no policy exists.
  for (let k = 0; k < K; k++) if (f64at(suffixUse, k) > f64at(slack, k)) return 0;
  rootBound = f64at(suffixRc, 0) - sumLambda;
  lpTables = alloc(K * LP_BYTES);
  for (let e = 0; e < K; e++) buildLpTable(e, maxChoices);
  boundF = f64s(K * BOUND_F);
  boundI = i32s(K * BOUND_I);
  rowOrder = i32s(K);
  prunes = i32s(K);
  for (let k = 0; k < K; k++) { setI32(rowOrder, k, k); setI32(prunes, k, 0); }
  pick = i32s(n);
  bestPick = i32s(n);
  used = zeros(K);
  parents = i32s(n);
  picks = i32s(n);
  setupMs = now() - t0;

  // steps 3-5
  dive(0, 0, 0);
  let timedOut = false;
  if (stopped == 1) {
    if (hasBest) {
      // the closer the incumbent to the optimum, the fewer partial policies the sweep keeps
      const p = i32s(n);
      memory.copy(p, bestPick, (<usize>n) << 2);
      const cost = improveBySwaps(p, best, cutoff - rootBound);
      if (cost < cutoff) record(cost, p);
    }
    timedOut = !sweepWidening();
  }
  if (hasBest) {
    for (let d = 0; d < n; d++) setI32(choice, i32at(depthLayer, d), i32at(idxP, i32at(choiceStart, d) + i32at(bestPick, d)));
  }
  return timedOut ? 1 : 0;
}
