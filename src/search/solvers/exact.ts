import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { EXIT_LIMIT, FieldError } from '../../util/errors.js';
import { thousands } from '../../util/format.js';
import type { Problem } from '../problem.js';
import { costScale, type Solution, type SolveOptions, type Solver } from './solver.js';

/**
 * Exact solver for the search's structure: one choice per layer (a multiple-choice knapsack) with
 * a few budget rows. Steps, each making the next one smaller:
 * 1. drop choices another choice of the same layer dominates (no more cost, no more use);
 * 2. the LP bound: Lagrange multipliers λ for the rows by coordinate ascent, then (two rows or
 *    more) Kelley's cutting planes to the LP optimum;
 * 3. reduced costs c + λ·u: a policy costs the LP bound plus its choices' gaps to their layers'
 *    least plus λ times its unused budget, so a policy below bound + δ uses only choices within δ
 *    of their layer's least (reduced-cost fixing);
 * 4. an incumbent: the Lagrangian's policy, repaired greedily where it breaks a budget;
 * 5. rounds at δ widening from the 8th least gap: the layers left with one choice within δ are
 *    fixed, the others searched by a short dive in reduced-cost order (then single and pair
 *    swaps) and a sweep layer by layer over partial policies (cost, use per row), keeping those
 *    that no other partial policy dominates and whose LP bound stays below bound + δ. The first
 *    round that finds a policy has found the optimum. Depth-first search alone re-explores the
 *    subtrees of dominated partial policies: on ResNet-50 W3A4/CR12.2 it needs ~10^6 nodes
 *    against ~10^4 partial policies here.
 * Bounds in the sweep: per row e, the LP relaxation of the remaining layers with row e exact and
 * the other rows priced by λ, precomputed per depth as a function of the budget left (a table
 * lookup a node); where that does not prune, the same LP split on the layer it takes in part.
 * Everything runs in WebAssembly (assembly/exact-search.ts), compiled ahead where the caller says a
 * solve is coming (prepare); this file copies the problem in (costs scaled by costScale) and the
 * policy, bound and counters out.
 */
export const exactSolver: Solver = {
  name: 'exact',
  async solve(problem, opts) {
    const t0 = performance.now(); // a compile still under way is the solve's time too
    if (!core && compiling) await compiling.catch(() => {});
    return solveExact(problem, opts, t0);
  },
  prepare: compileExactSolverAhead,
};

export function solveExact(problem: Problem, opts: SolveOptions = {}, t0 = performance.now()): Solution {
  const n = problem.choices.length;
  const K = problem.rows.length;
  const done = (status: Solution['status'], choice: number[] | null, stats: Record<string, number>, more: Partial<Solution> = {}): Solution => ({
    status, choice, solver: 'exact', solveMs: performance.now() - t0, stats, ...more,
  });
  if (n === 0) return done('optimal', [], { nodes: 0 });

  const wasm = exactSearchCore();
  const scale = costScale(problem);
  const flat = flatChoices(problem.choices, K, scale);
  const limits = Float64Array.from(problem.rows, (r) => r.limit);
  // The last choices stay in the module's memory with their undominated ones: a sweep's points
  // (and repeated solves) copy only their limits.
  const kept = flat === lastCopied?.flat ? lastCopied : null;
  const memoryMb = opts.memoryLimitMb ?? DEFAULT_MEMORY_MB;
  wasm.setMemoryLimit(memoryMb * 2 ** 20);
  if (kept) wasm.resetKeepingChoices();
  else wasm.reset();
  lastCopied = null; // until this solve has kept them
  const deadline = opts.timeLimitMs === undefined ? Infinity : t0 + opts.timeLimitMs;
  let timedOut = false, outOfMemory = false, solving = false;
  let pointers = kept?.at ?? [];
  reportProgress = opts.onProgress ? (round, depth, depths, states, bound, best) => opts.onProgress!({
    elapsedMs: performance.now() - t0,
    detail: `round ${round}, layer ${depth} of the ${depths} searched, ${thousands(states)} partial policies`,
    bound: bound / scale,
    best: Number.isFinite(best) ? best / scale : null,
  }) : null;
  try {
    // Allocate everything first: growing the memory detaches earlier views of it.
    const arrays = kept ? [limits] : [flat.starts, flat.cost, flat.use, limits];
    const at = arrays.map((a) => wasm.alloc(a.byteLength));
    arrays.forEach((a, i) => {
      const view = a instanceof Float64Array ? new Float64Array(wasm.memory.buffer, at[i], a.length) : new Int32Array(wasm.memory.buffer, at[i], a.length);
      view.set(a);
    });
    if (!kept) pointers = at.slice(0, 3);
    const [starts, cost, use] = pointers;
    solving = true;
    timedOut = wasm.solve(n, K, starts, cost, use, at[at.length - 1], deadline, kept ? 1 : 0) !== 0;
  } catch (err) {
    // `take` traps (unreachable) at the memory limit, or when memory cannot grow; any other trap is a bug
    if (!(err instanceof WebAssembly.RuntimeError) || !wasm.memoryExhausted()) throw err;
    if (!solving) throw new FieldError((n) => `exact solver: memory limit of ${memoryMb} MB is less than the problem itself takes; raise ${n('memoryLimitMb')}`, EXIT_LIMIT);
    timedOut = outOfMemory = true;
  } finally {
    reportProgress = null;
  }
  if (!outOfMemory) lastCopied = { flat, at: pointers };
  const stats = {
    nodes: wasm.nodeCount(), states: wasm.stateCount(), sweeps: wasm.sweepCount(), rounds: wasm.roundCount(), cuttingPlanes: wasm.cuttingPlaneRounds(),
    searchedLayers: wasm.searchedLayers(), rootBound: wasm.rootBoundValue() / scale, setupMs: wasm.setupTime(),
  };
  const bound = wasm.provenBoundValue() / scale; // -Infinity when stopped before the LP bound
  const limit = outOfMemory ? 'memory' : 'time';
  if (!wasm.found()) {
    if (outOfMemory) {
      const proven = Number.isFinite(bound) ? ` (none costs less than ${bound})` : '';
      throw new FieldError((n) => `exact solver: memory limit of ${memoryMb} MB reached before a policy was found${proven}; raise ${n('memoryLimitMb')}, give ${n('timeLimitMs')}, or try ${n('solver')} highs`, EXIT_LIMIT);
    }
    return done(timedOut ? 'time_limit' : 'infeasible', null, stats, timedOut ? { ...(Number.isFinite(bound) ? { bound } : {}), limit } : {});
  }
  wasm.writeBest();
  const choice = Array.from(new Int32Array(wasm.memory.buffer, wasm.choicePointer(), n));
  return done(timedOut ? 'time_limit' : 'optimal', choice, stats, timedOut ? { ...(Number.isFinite(bound) ? { bound } : {}), limit } : {});
}

/** The memory the exact solver may take unless told (--memory-limit): half of WebAssembly's 4 GiB. */
export const DEFAULT_MEMORY_MB = 2048;
/** WebAssembly's 4 GiB, less room for the module itself. */
export const MAX_MEMORY_MB = 4000;

/** The exports of assembly/exact-search.ts (pointers are byte offsets into its memory). */
interface ExactSearchCore {
  memory: WebAssembly.Memory;
  reset(): void;
  alloc(bytes: number): number;
  setMemoryLimit(bytes: number): void;
  memoryExhausted(): number;
  solve(layers: number, rows: number, starts: number, cost: number, use: number, limits: number, deadline: number, sameChoices: number): number;
  resetKeepingChoices(): void;
  found(): number;
  writeBest(): void;
  choicePointer(): number;
  nodeCount(): number;
  stateCount(): number;
  sweepCount(): number;
  roundCount(): number;
  cuttingPlaneRounds(): number;
  searchedLayers(): number;
  rootBoundValue(): number;
  provenBoundValue(): number;
  setupTime(): number;
}

type ProgressImport = (round: number, depth: number, depths: number, states: number, bound: number, best: number) => void;
/** where the module's progress calls go during a solve that asked for them */
let reportProgress: ProgressImport | null = null;

/** the solver's WebAssembly, built from assembly/exact-search.ts */
const MODULE_FILE = new URL('./exact-search.wasm', import.meta.url);

let core: ExactSearchCore | null = null;
/** the module compiled ahead (compileExactSolverAhead), once it is */
let compiled: WebAssembly.Module | null = null;
let compiling: Promise<WebAssembly.Module> | null = null;

/** V8 flags that decide how WebAssembly compiles: a process started with any keeps its own choice. */
const WASM_FLAG = /liftoff|wasm/;

/**
 * Start compiling the solver's module in the background with V8's optimising compiler, in a
 * process (or sweep worker) about to load its inputs and solve. Left to itself V8 runs
 * WebAssembly first from its baseline compiler and tiers hot functions up during the solve: a
 * fresh process's first ResNet-50 W3A4/CR12.2 solve took 9–36 ms against 1.4 ms warm. The
 * optimising compile (~20–30 ms, on V8's background threads) ends while the inputs load. The
 * flags are V8's process-wide ones, so they hold only while this module compiles (no other
 * WebAssembly compiles while a search loads its inputs) and are set back to V8's defaults after.
 */
export function compileExactSolverAhead(): void {
  if (core || compiling) return;
  const bytes = readFileSync(MODULE_FILE);
  const eager = ![...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => WASM_FLAG.test(a));
  if (eager) setV8Flags(['--no-liftoff', '--no-wasm-lazy-compilation']);
  compiling = WebAssembly.compile(bytes).finally(() => eager && setV8Flags(['--liftoff', '--wasm-lazy-compilation']));
  compiling.then((m) => (compiled = m), () => {}); // a failed compile fails again, and says why, in exactSearchCore
}

function setV8Flags(flags: string[]): void {
  for (const f of flags) setFlagsFromString(f);
}
/** the choices in the module's memory (pointers to starts, cost, use), kept from the last solve */
let lastCopied: { flat: FlatChoices; at: number[] } | null = null;

/** The compiled module, instantiated once per thread (a few milliseconds, then reused). */
function exactSearchCore(): ExactSearchCore {
  if (!core) {
    const module = compiled ?? new WebAssembly.Module(readFileSync(MODULE_FILE));
    const instance = new WebAssembly.Instance(module, {
      env: {
        now: () => performance.now(),
        progress: ((...args) => reportProgress?.(...args)) as ProgressImport,
        abort: () => { throw new Error('exact-search.wasm: internal error'); },
      },
    });
    core = instance.exports as unknown as ExactSearchCore;
  }
  return core;
}

/** A problem's choices as flat arrays: layer i's at [starts[i], starts[i + 1]), use times K. */
interface FlatChoices {
  starts: Int32Array;
  cost: Float64Array;
  use: Float64Array;
}

/** Kept per choices array: a sweep's points share one (only their limits differ). */
const flattened = new WeakMap<Problem['choices'], FlatChoices>();

/** `scale`: costScale's, so the module sees costs of one magnitude. */
function flatChoices(choices: Problem['choices'], K: number, scale: number): FlatChoices {
  let flat = flattened.get(choices);
  if (flat) return flat;
  const starts = new Int32Array(choices.length + 1);
  choices.forEach((cs, i) => (starts[i + 1] = starts[i] + cs.length));
  const cost = new Float64Array(starts[choices.length]), use = new Float64Array(starts[choices.length] * K);
  choices.forEach((cs, i) => cs.forEach((c, j) => {
    cost[starts[i] + j] = c.cost * scale;
    for (let k = 0; k < K; k++) use[(starts[i] + j) * K + k] = c.use[k];
  }));
  flattened.set(choices, (flat = { starts, cost, use }));
  return flat;
}
