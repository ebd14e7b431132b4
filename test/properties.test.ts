import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { readPacked, writePacked } from '../src/export/packed.js';
import { policyText, readPolicy } from '../src/export/policy-file.js';
import { readIndicators } from '../src/indicators/indicators.js';
import { readLayerTable } from '../src/model/table-file.js';
import { readTfjsLayerTable } from '../src/model/tfjs-import.js';
import { readConfigList } from '../src/train/config-list.js';
import { readCostTable } from '../src/search/cost-table.js';
import { readCheckpointManifest } from '../src/train/checkpoint.js';
import { UserError } from '../src/util/errors.js';
import { MAX_BINARY_INPUT_BYTES, readInputFile } from '../src/util/fs.js';
import { readCheckpoint, disposeCheckpoint } from '../src/train/checkpoint.js';
import { readOnnxModel } from '../src/model/onnx-import.js';
import { graphLayerTable } from '../src/model/graph-table.js';
import { REPO_ROOT, runCli, tempDir, writeTinySearchInputs } from './support.js';

// Issue 19's fuzzed surface: every input file reader and every numeric flag, on generated inputs.
// Any input either gives a result that passes an independent check, or one line naming the file or
// flag (exit 2/3/4 on the command line) — never another error, a stack trace, exit 1, a file
// outside the named folder or a partial file. Seeded (FC_SEED) and bounded in runs to stay within CI
// time; a failure prints the seed and the shrunk counterexample to replay.

const SEED = Number(process.env.FC_SEED ?? 19);
const RUNS = Number(process.env.FC_RUNS ?? 150);
const dir = tempDir('mpq-props-');
const tiny = writeTinySearchInputs(dir);

// ---------------------------------------------------------------------------------------------
// Readers. Each has a valid file to start from (mutated at the JSON or byte level) and a check of
// what it returns: a new kind of input file is one more entry here.
// ---------------------------------------------------------------------------------------------

interface Reader {
  name: string;
  /** file name the reader is given (readers that take a folder get its parent) */
  file: string;
  valid(): Uint8Array;
  /** reads the file at `path`; returns what it read */
  read(path: string): unknown;
  /** what a successful read must satisfy */
  check(result: unknown): void;
  /** JSON text: mutated as JSON too */
  json?: boolean;
  /** what an error names (default: the file) */
  names?: string;
}

const positiveFinite = (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x > 0;
const text = (s: string) => new TextEncoder().encode(s);

const TINY_PICKLE = 'gAJ9cQAoWAYAAAB3ZWlnaHRxAX1xAihYAgAAAGMxcQN9cQQoWAEAAAA2cQVHP4R64UeuFHtYAQAAADVxBkc/lHrhR64Ue1gBAAAANHEHRz+keuFHrhR7WAEAAAAzcQhHP7R64UeuFHtYAQAAADJxCUc/yZmZmZmZmnVYAgAAAGMycQp9cQsoWAEAAAA2cQxHP5R64UeuFHtYAQAAADVxDUc/pHrhR64Ue1gBAAAANHEORz+0euFHrhR7WAEAAAAzcQ9HP8R64UeuFHtYAQAAADJxEEc/2ZmZmZmZmnVYAgAAAGMzcRF9cRIoWAEAAAA2cRNHP3R64UeuFHtYAQAAADVxFEc/hHrhR64Ue1gBAAAANHEVRz+UeuFHrhR7WAEAAAAzcRZHP6R64UeuFHtYAQAAADJxF0c/uZmZmZmZmnVYAgAAAGM0cRh9cRkoWAEAAAA2cRpHP464UeuFHrhYAQAAADVxG0c/nrhR64UeuFgBAAAANHEcRz+uuFHrhR64WAEAAAAzcR1HP764UeuFHrhYAQAAADJxHkc/0zMzMzMzM3V1WAMAAABhY3RxH31xIChoA31xIShYAQAAADZxIkc/lHrhR64Ue1gBAAAANXEjRz+keuFHrhR7WAEAAAA0cSRHP7R64UeuFHtYAQAAADNxJUc/xHrhR64Ue1gBAAAAMnEmRz/ZmZmZmZmadWgKfXEnKFgBAAAANnEoRz+EeuFHrhR7WAEAAAA1cSlHP5R64UeuFHtYAQAAADRxKkc/pHrhR64Ue1gBAAAAM3ErRz+0euFHrhR7WAEAAAAycSxHP8mZmZmZmZp1aBF9cS0oWAEAAAA2cS5HP4R64UeuFHtYAQAAADVxL0c/lHrhR64Ue1gBAAAANHEwRz+keuFHrhR7WAEAAAAzcTFHP7R64UeuFHtYAQAAADJxMkc/yZmZmZmZmnVoGH1xMyhYAQAAADZxNEc/nrhR64UeuFgBAAAANXE1Rz+uuFHrhR64WAEAAAA0cTZHP764UeuFHrhYAQAAADNxN0c/zrhR64UeuFgBAAAAMnE4Rz/jMzMzMzMzdXVYCgAAAGxheWVyX25hbWVxOV1xOihoA2gKaBFoGGV1Lg==';

const checkIndicators = (r: unknown) => {
  const ind = r as ReturnType<typeof readIndicators>;
  assert.ok(ind.layerNames.length > 0);
  for (const side of [ind.weight, ind.act]) for (const n of ind.layerNames) for (const v of Object.values(side[n]!)) assert.ok(positiveFinite(v));
};

const layer = (name: string, w: number, a: number) => ({ name, weightBits: w, actBits: a, macs: 10, params: 4 });
const validPolicy = {
  format: 'mpq-policy', version: 1, model: 'tiny', bits: [6, 4, 2],
  layers: [layer('c1', 4, 4), layer('c2', 2, 6)], fixed: [layer('stem', 8, 8)], objective: 1.5, command: 'mpq search',
};

const tfjsModel = {
  modelTopology: { class_name: 'Sequential', config: { name: 's', layers: [
    { class_name: 'Conv2D', config: { name: 'c1', filters: 8, kernel_size: [3, 3], batch_input_shape: [null, 28, 28, 1] } },
    { class_name: 'MaxPooling2D', config: { name: 'pool', pool_size: [2, 2] } },
    { class_name: 'Conv2D', config: { name: 'c2', filters: 16, kernel_size: [3, 3], strides: [2, 2], padding: 'same' } },
    { class_name: 'Flatten', config: { name: 'flat' } },
    { class_name: 'Dense', config: { name: 'fc', units: 10 } },
  ] } },
};

const checkTable = (r: unknown) => {
  const t = r as ReturnType<typeof readLayerTable>;
  for (const l of [...t.layers, ...t.fixed]) {
    assert.ok(Number.isInteger(l.params) && l.params >= 0, `params ${l.params}`);
    assert.ok(Number.isFinite(l.macs) && l.macs >= 0, `macs ${l.macs}`);
  }
  assert.equal(new Set([...t.layers, ...t.fixed].map((l) => l.name)).size, t.layers.length + t.fixed.length, 'unique names');
};

const packedLayer = { name: 'c1', shape: [2, 3], bits: 3, scales: Float32Array.of(0.5), q: Int32Array.of(-4, -1, 0, 1, 2, 3) };

const checkpointDir = join(dir, 'ckpt');
const READERS: Reader[] = [
  {
    name: 'indicators JSON', file: 'ind.json', json: true, valid: () => readFileSync(tiny.indicators),
    read: readIndicators, check: checkIndicators,
  },
  {
    name: 'indicators pickle', file: 'ind.pkl', valid: () => Buffer.from(TINY_PICKLE, 'base64'),
    read: readIndicators, check: checkIndicators,
  },
  { name: 'layer table', file: 'table.json', json: true, valid: () => readFileSync(tiny.model), read: readLayerTable, check: checkTable },
  {
    name: 'latency table', file: 'latency.json', json: true, valid: () => text(JSON.stringify({ unit: 'ms', layers: { c1: { w4a4: 0.1, w2a2: 0.05 } } })),
    read: (path: string) => readCostTable(path, 'latency table'), check: (r) => assert.ok(typeof (r as { unit: unknown }).unit === 'string'),
  },
  {
    name: 'policy', file: 'policy.json', json: true, valid: () => text(JSON.stringify(validPolicy)),
    read: readPolicy, check: (r) => assert.doesNotThrow(() => policyText(r as typeof validPolicy & never, 'p')), // reads back as written
  },
  {
    name: 'NNI config list', file: 'config.json', json: true,
    valid: () => text(JSON.stringify([{ quant_types: ['weight', 'input'], quant_bits: { weight: 4, input: 8 }, op_types: ['Conv2d'] }])),
    read: (p) => readConfigList(p, 'qat'), check: (r) => assert.ok(Array.isArray(r)),
  },
  { name: 'tfjs model.json', file: 'model.json', json: true, valid: () => text(JSON.stringify(tfjsModel)), read: readTfjsLayerTable, check: checkTable },
  {
    name: 'ONNX model', file: 'model.onnx', valid: () => readFileSync(join(REPO_ROOT, 'test/fixtures/onnx/separable.onnx')),
    read: (p) => {
      const model = readOnnxModel(p, { weights: true });
      return graphLayerTable(model.graph, p);
    },
    check: checkTable,
  },
  {
    name: 'packed model', file: 'model.mpqp', valid: () => writePacked([packedLayer], { model: 'mnist-cnn' }, [{ name: 'bn', shape: [2], values: Float32Array.of(1, 2) }]),
    read: (p) => readPacked(readInputFile(p, 'packed model', MAX_BINARY_INPUT_BYTES), p), // as mpq eval --packed reads it
    check: (r) => {
      for (const l of (r as ReturnType<typeof readPacked>).layers) {
        assert.equal(l.q.length, l.shape.reduce((a, b) => a * b, 1));
        for (const q of l.q) assert.ok(q >= -(2 ** (l.bits - 1)) && q < 2 ** (l.bits - 1));
      }
    },
  },
  {
    name: 'checkpoint manifest', file: 'ckpt/model.json', json: true, names: checkpointDir,
    valid: () => readFileSync(join(checkpointDir, 'model.json')),
    read: () => {
      const checkpoint = readCheckpoint(checkpointDir); // manifest, weights file and its hash
      disposeCheckpoint(checkpoint);
      return readCheckpointManifest(checkpointDir);
    },
    check: (r) => assert.match((r as { weightsFile: string }).weightsFile, /^weights-[0-9a-f]{16}\.bin$/),
  },
];

/** A JSON value with one part replaced, removed or added: the structure stays mostly valid. */
function mutateJson(value: unknown, pick: number, replacement: unknown, mode: number): unknown {
  const paths: Array<Array<string | number>> = [];
  const walk = (v: unknown, path: Array<string | number>) => {
    paths.push(path);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
  };
  walk(value, []);
  const path = paths[pick % paths.length]!;
  const copy = structuredClone(value);
  if (path.length === 0) return replacement;
  const parent = path.slice(0, -1).reduce<any>((o, k) => o[k], copy);
  const key = path.at(-1)!;
  if (mode === 0) parent[key] = replacement;
  else if (mode === 1 && !Array.isArray(parent)) delete parent[key];
  else if (mode === 1) parent.splice(key as number, 1);
  else if (Array.isArray(parent)) parent.push(replacement);
  else parent[`${String(key)}_extra`] = replacement;
  return copy;
}

/** Numbers where numbers break: huge, tiny, negative, fractional, as strings. */
const nasty = fc.oneof(
  fc.constantFrom(0, -1, 1e308, -1e308, 5e-324, 2 ** 53 + 1, 0.5, 1e21, 'NaN', '0.03', '4', '', null, true, [], {}),
  fc.jsonValue({ maxDepth: 3 }),
);

type FileInput = { kind: string; bytes: Uint8Array };

function fileInputs(reader: Reader): fc.Arbitrary<FileInput> {
  const valid = reader.valid();
  const byteLevel = [
    fc.nat({ max: valid.length }).map((n) => ({ kind: `truncated to ${n}`, bytes: valid.subarray(0, n) })),
    fc.array(fc.tuple(fc.nat({ max: Math.max(0, valid.length - 1) }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 })
      .map((flips) => {
        const bytes = Uint8Array.from(valid);
        for (const [at, x] of flips) bytes[at] ^= x;
        return { kind: `bytes flipped ${JSON.stringify(flips)}`, bytes };
      }),
    fc.uint8Array({ maxLength: 256 }).map((bytes) => ({ kind: 'random bytes', bytes })),
  ];
  if (!reader.json) return fc.oneof(...byteLevel);
  const parsed = JSON.parse(new TextDecoder().decode(valid));
  return fc.oneof(
    ...byteLevel,
    fc.jsonValue({ maxDepth: 4 }).map((v) => ({ kind: 'any JSON', bytes: text(JSON.stringify(v) ?? 'null') })),
    fc.tuple(fc.nat(), nasty, fc.nat({ max: 2 })).map(([pick, replacement, mode]) =>
      ({ kind: 'mutated JSON', bytes: text(JSON.stringify(mutateJson(parsed, pick, replacement, mode))) })),
  );
}

/** A reader's answer to any file: a checked result, or one UserError line naming the file. */
function assertReads(reader: Reader, path: string, input: FileInput): void {
  let result: unknown;
  try {
    result = reader.read(path);
  } catch (err) {
    assert.ok(err instanceof UserError, `${reader.name} (${input.kind}): not a UserError: ${(err as Error)?.stack ?? String(err)}`);
    assert.ok(!err.message.includes('\n'), `${reader.name}: two lines: ${err.message}`);
    assert.ok(err.message.includes(reader.names ?? path), `${reader.name}: does not name ${reader.names ?? path}: ${err.message}`);
    assert.ok(err.exitCode === 2, `${reader.name}: exit ${err.exitCode}`);
    return;
  }
  reader.check(result);
}

test('every input file reader: any bytes, any JSON, any mutation of a valid file → a checked result or one line naming the file', async () => {
  // a real checkpoint to mutate (its weights stay; the manifest is what varies)
  const { saveCheckpoint } = await import('../src/train/checkpoint.js');
  const tf = await import('@tensorflow/tfjs');
  mkdirSync(checkpointDir);
  saveCheckpoint(checkpointDir, { model: 'mnist-cnn', bits: [4], training: { stage: 'train', epochsDone: 1, epochs: 1 }, meta: {} },
    new Map([['conv1.weight', tf.variable(tf.tensor([1, 2, 3, 4], [2, 2]))], ['bn.bias', tf.variable(tf.tensor([0.5]))]]));
  for (const reader of READERS) {
    const path = join(dir, reader.file);
    writeFileSync(path, reader.valid());
    assertReads(reader, path, { kind: 'valid', bytes: reader.valid() }); // the valid file reads and passes its check
    fc.assert(fc.property(fileInputs(reader), (input) => {
      writeFileSync(path, input.bytes);
      assertReads(reader, path, input);
    }), { seed: SEED, numRuns: RUNS, endOnFailure: true, includeErrorInReport: true });
    writeFileSync(path, reader.valid());
  }
});

// ---------------------------------------------------------------------------------------------
// Numeric flags of search and sweep, through the CLI, each answer checked against a brute force
// over all 25^4 policies of the tiny model: an "optimal" policy is optimal and within every
// budget, an "infeasible" problem has no policy within the budgets.
// ---------------------------------------------------------------------------------------------

const table = JSON.parse(readFileSync(tiny.model, 'utf8')) as {
  layers: Array<{ name: string; params: number; macs: number }>;
  fixed: Array<{ name: string; params: number; macs: number; weight_bits: number; act_bits: number }>;
};
const indicators = JSON.parse(readFileSync(tiny.indicators, 'utf8')) as { weight: Record<string, Record<string, number>>; act: Record<string, Record<string, number>> };

interface Budgets {
  bits: number[];
  alpha: number;
  bops: boolean;
  wb: number;
  ab: number;
  cr: number;
  maxBitopsG?: number;
  maxSizeMb?: number;
  equivalentBits?: number;
  wMin?: number;
  wMax?: number;
}

/** The least objective over all policies within the budgets, each budget scaled by `slack`; null: none. */
function bruteForce(b: Budgets, slack: number): number | null {
  const L = table.layers;
  const wBits = b.bits.filter((w) => (b.wMin ?? 0) <= w && w <= (b.wMax ?? 99));
  const allParams = [...L, ...table.fixed].reduce((s, l) => s + l.params, 0);
  const searchParams = L.reduce((s, l) => s + l.params, 0);
  const fixedBitops = table.fixed.reduce((s, l) => s + l.macs * l.weight_bits * l.act_bits, 0);
  const fixedBits = table.fixed.reduce((s, l) => s + l.params * l.weight_bits, 0);
  const within = (used: number, limit: number) => used <= limit * slack + 1e-9 * slack;
  let best: number | null = null;
  const choice = (i: number, objective: number, bitops: number, sizeBits: number): void => {
    if (i === L.length) {
      if (b.bops && !within(bitops, L.reduce((s, l) => s + l.macs * b.wb * b.ab, 0))) return;
      if (b.maxBitopsG !== undefined && !within(bitops + fixedBitops, b.maxBitopsG * 1e9)) return;
      if (b.cr > 0 && !within(sizeBits + fixedBits, (32 * allParams) / b.cr)) return;
      if (b.equivalentBits !== undefined && !within(sizeBits, b.equivalentBits * searchParams)) return;
      if (b.maxSizeMb !== undefined && !within(sizeBits + fixedBits, b.maxSizeMb * 8 * 2 ** 20)) return;
      if (best === null || objective < best) best = objective;
      return;
    }
    const l = L[i]!;
    for (const w of wBits) {
      for (const a of b.bits) {
        choice(i + 1, objective + indicators.act[l.name]![String(a)]! + b.alpha * indicators.weight[l.name]![String(w)]!, bitops + l.macs * w * a, sizeBits + l.params * w);
      }
    }
  };
  choice(0, 0, 0, 0);
  return best;
}

/** A flag value: mostly numbers spread evenly over [lo, hi] (3 significant digits), sometimes edge cases and garbage. */
const EDGES = fc.constantFrom('0', '-1', '-0', '1e308', '1e-320', 'Infinity', 'NaN', '0x10', ' 3', '3 ', '', 'abc', '1e3', '2.5e0', '999999999999');
const flagValue = (lo: number, hi: number) => fc.oneof(
  { weight: 15, arbitrary: fc.integer({ min: 0, max: 1000 }).map((k) => String(Number((lo + ((hi - lo) * k) / 1000).toPrecision(3)))) },
  { weight: 1, arbitrary: EDGES },
);
/** The same for a flag that takes whole numbers (bit-widths). */
const wholeValue = (lo: number, hi: number) => fc.oneof({ weight: 15, arbitrary: fc.integer({ min: lo, max: hi }).map(String) }, { weight: 1, arbitrary: EDGES });
const optional = (value: fc.Arbitrary<string>) => fc.option(value, { nil: undefined, freq: 2 });

// the tiny model: 750k searchable MACs (48 M BitOps at W8A8, 0.05 G), 15k weights (0.015 MB at 8 bits)
const searchFlags = fc.record({
  bits: fc.oneof(fc.constant(['6', '5', '4', '3', '2']), fc.subarray(['6', '5', '4', '3', '2'], { minLength: 1 }), fc.array(wholeValue(2, 6), { minLength: 1, maxLength: 3 })),
  // alpha over 1e300 is issue 19 item 2 (the solver's arithmetic at extreme magnitudes, in the search-scale work)
  alpha: flagValue(0, 10),
  wb: flagValue(2, 8),
  ab: flagValue(2, 8),
  cr: flagValue(0, 16),
  maxBitops: optional(flagValue(0.001, 0.06)),
  maxSizeMb: optional(flagValue(0.001, 0.02)),
  equivalentBits: optional(flagValue(0, 8)),
  wBitMin: optional(wholeValue(2, 6)),
  wBitMax: optional(wholeValue(2, 6)),
  timeLimit: optional(flagValue(0, 10)),
  noBops: fc.boolean(),
});

test('search: any numeric flag values → a policy the brute force confirms, or one line and exit 2/3/4', () => {
  const exits = new Map<number, number>();
  fc.assert(fc.property(searchFlags, (f) => {
    const args = ['search', '--model', tiny.model, '--indicators', tiny.indicators, '--json', '--bits', ...f.bits, '--alpha', f.alpha, '--wb', f.wb, '--ab', f.ab, '--cr', f.cr];
    const optional: Array<[string, string | undefined]> = [
      ['--max-bitops', f.maxBitops], ['--max-size-mb', f.maxSizeMb], ['--equivalent-bits', f.equivalentBits],
      ['--w-bit-min', f.wBitMin], ['--w-bit-max', f.wBitMax], ['--time-limit', f.timeLimit],
    ];
    for (const [flag, value] of optional) if (value !== undefined) args.push(`${flag}=${value}`);
    if (f.noBops) args.push('--no-bops');
    const r = runCli(args);
    exits.set(r.status!, (exits.get(r.status!) ?? 0) + 1);
    const where = `mpq ${args.slice(5).join(' ')}`;
    assert.doesNotMatch(r.stderr, /\n\s+at /, `${where}: stack trace: ${r.stderr}`);
    assert.ok([0, 2, 3, 4].includes(r.status!), `${where}: exit ${r.status}: ${r.stderr}`);
    if (r.status === 2) {
      if (process.env.FC_DEBUG) console.error(r.stderr.trim());
      assert.equal(r.stderr.trim().split('\n').length, 1, `${where}: ${r.stderr}`);
      assert.match(r.stderr, /^mpq: /);
      return;
    }
    const o = JSON.parse(r.stdout);
    const budgets: Budgets = {
      bits: o.bits, alpha: o.alpha, bops: !f.noBops, wb: Number(f.wb), ab: Number(f.ab), cr: Number(f.cr),
      ...(f.maxBitops !== undefined ? { maxBitopsG: Number(f.maxBitops) } : {}),
      ...(f.maxSizeMb !== undefined ? { maxSizeMb: Number(f.maxSizeMb) } : {}),
      ...(f.equivalentBits !== undefined ? { equivalentBits: Number(f.equivalentBits) } : {}),
      ...(f.wBitMin !== undefined ? { wMin: Number(f.wBitMin) } : {}),
      ...(f.wBitMax !== undefined ? { wMax: Number(f.wBitMax) } : {}),
    };
    if (o.status === 'infeasible') {
      assert.equal(r.status, 3);
      assert.equal(bruteForce(budgets, 1 - 1e-9), null, `${where}: called infeasible, but a policy fits`);
      return;
    }
    // the returned policy: its objective recomputed, within every budget (the brute force over it alone)
    const objective = o.layers.reduce((s: number, l: { name: string; weight_bits: number; act_bits: number }) =>
      s + indicators.act[l.name]![String(l.act_bits)]! + o.alpha * indicators.weight[l.name]![String(l.weight_bits)]!, 0);
    assert.ok(Math.abs(objective - o.objective) <= 1e-9 * Math.max(1, Math.abs(objective)), `${where}: objective ${o.objective} recomputes to ${objective}`);
    for (const b of o.budgets) assert.ok(b.used <= b.limit * (1 + 1e-9) + 1e-12, `${where}: ${JSON.stringify(b)}`);
    if (o.status === 'optimal') {
      assert.equal(r.status, 0);
      const best = bruteForce(budgets, 1 + 1e-9);
      assert.ok(best !== null && o.objective <= (bruteForce(budgets, 1 - 1e-9) ?? Infinity) + 1e-9 * Math.max(1, Math.abs(best)) && o.objective >= best - 1e-9 * Math.max(1, Math.abs(best)),
        `${where}: "optimal" ${o.objective}, the brute force finds ${best}`);
    } else {
      assert.equal(o.status, 'time_limit');
      assert.equal(r.status, 4);
    }
  }), { seed: SEED, numRuns: Number(process.env.FC_CLI_RUNS ?? 40), endOnFailure: true, includeErrorInReport: true });
  // the generated flags reach the solver and its checks often, not only the flag parser
  assert.ok((exits.get(0) ?? 0) >= 3 && (exits.get(3) ?? 0) >= 2, `exit codes seen: ${JSON.stringify([...exits])}`);
});

test('sweep: flag values never put a file outside --out, never a partial set, never a temp file', () => {
  const cwd = tempDir('mpq-props-out-');
  fc.assert(fc.property(fc.subarray(['2', '3', '4', '5', '6'], { minLength: 1, maxLength: 3 }), flagValue(0, 20), (wb, cr) => {
    const r = runCli(['sweep', '--model', tiny.model, '--indicators', tiny.indicators, '--wb', ...wb, '--ab', '4', '--cr', cr, '--out', 'out'], cwd);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.ok([0, 2, 3].includes(r.status!), `exit ${r.status}: ${r.stderr}`);
    // --out is a link to the set swapped in beside it (.out.<time>-<pid>): nothing else
    assert.deepEqual(readdirSync(cwd).filter((f) => f !== 'out' && !/^\.out\./.test(f)), [], 'nothing outside --out');
    if (r.status === 0) {
      const sweep = JSON.parse(readFileSync(join(cwd, 'out', 'sweep.json'), 'utf8'));
      assert.equal(sweep.points.length, wb.length);
      assert.equal(readFileSync(join(cwd, 'out', 'sweep.csv'), 'utf8').trim().split('\n').length, wb.length + 1);
    }
    // a refused flag (e.g. a budget too small to represent) may leave no --out at all
    if (r.status === 0 || existsSync(join(cwd, 'out'))) assert.deepEqual(readdirSync(join(cwd, 'out')).filter((f) => f.endsWith('.tmp')), []);
  }), { seed: SEED, numRuns: 8, endOnFailure: true, includeErrorInReport: true });
});

// ---------------------------------------------------------------------------------------------
// Numeric flags of the training commands, on a 16-image IDX data set so that any value runs fast:
// a run either finishes with a complete checkpoint of the epochs asked for, or one line, exit 2.
// ---------------------------------------------------------------------------------------------

function idx(dims: number[], data: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, data]);
}

test('train: any value of its numeric flags → a complete checkpoint of the epochs asked for, or one line and exit 2', () => {
  const data = join(dir, 'idx');
  mkdirSync(data);
  const images = Uint8Array.from({ length: 16 * 28 * 28 }, (_, i) => (i * 37) % 256);
  const labels = Uint8Array.from({ length: 16 }, (_, i) => i % 10);
  for (const split of ['train', 't10k']) {
    writeFileSync(join(data, `${split}-images-idx3-ubyte.gz`), gzipSync(idx([16, 28, 28], images)));
    writeFileSync(join(data, `${split}-labels-idx1-ubyte`), idx([16], labels));
  }
  const flags = fc.record({
    epochs: fc.oneof(fc.integer({ min: -1, max: 2 }).map(String), fc.constantFrom('1.5', 'x', '1e0', '')),
    flag: fc.constantFrom('--limit', '--batch-size', '--lr', '--weight-decay', '--seed', '--workers'),
    value: flagValue(-2, 40),
  });
  let n = 0;
  fc.assert(fc.property(flags, ({ epochs, flag, value }) => {
    const checkpoint = join(dir, `train-${n++}`);
    const args = ['train', '--model', 'mnist-cnn', '--data', data, '--epochs', epochs, '--checkpoint', checkpoint, '--no-progress', `${flag}=${value}`];
    const r = runCli(args);
    const where = args.slice(1).join(' ');
    assert.doesNotMatch(r.stderr, /\n\s+at /, `${where}: stack trace: ${r.stderr}`);
    assert.ok(r.status === 0 || r.status === 2, `${where}: exit ${r.status}: ${r.stderr}`);
    if (r.status === 2) {
      if (process.env.FC_DEBUG) console.error(r.stderr.trim());
      assert.equal(r.stderr.trim().split('\n').length, 1, `${where}: ${r.stderr}`);
      return;
    }
    const c = readCheckpoint(checkpoint);
    disposeCheckpoint(c);
    assert.equal(c.manifest.training.epochsDone, Number(epochs), where);
  }), { seed: SEED, numRuns: Number(process.env.FC_TRAIN_RUNS ?? 8), endOnFailure: true, includeErrorInReport: true });
});
