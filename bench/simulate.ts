/**
 * Post-training simulated quantization and packed files on real MNIST:
 *
 * 1. the seed's accuracy table (seed 003): `mpq simulate --grid` on an FP mnist-cnn checkpoint —
 *    layer / group / channel weight ranges × W8 / W4 × A8 (uint after ReLU) × no, naive and KL
 *    calibration × merged or separate batch norm, first conv excluded;
 * 2. the shipped W3A4/CR12.2 policy fine-tuned briefly from that checkpoint (or, with --ft, an
 *    existing checkpoint fine-tuned at it), packed: the file's bytes against FP32 weights /
 *    compression ratio, and the packed model's test top-1 against the fake-quantized model's
 *    (they must be equal).
 *
 *   node dist/bench/simulate.js [--from DIR] [--ft DIR] [--seed 7] [--ft-limit 8000] [--out docs/simulate.md]
 *
 * Without --from, a full-precision model is trained first (2 epochs), since a fresh clone has no
 * checkpoint. --out replaces the generated section of that file with the tables.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readPacked } from '../src/export/packed.js';
import { readPolicy } from '../src/export/policy-file.js';
import { disposeModel } from '../src/train/models.js';
import { formatPackedSize, loadPackedModel, packedSize, packModel, signedPercent, sizeVerdict, type PackedSize } from '../src/simulate/packed-model.js';
import { expandGrid, runSimulation, SEED_GRID, simulateMarkdown } from '../src/simulate/simulate.js';
import { loadDataset } from '../src/train/data.js';
import { evaluate, type Evaluation } from '../src/train/loops.js';
import { createModel } from '../src/train/models.js';
import { policyBits, policyFromFile } from '../src/train/policies.js';
import { DATA_SPLIT_SEED, finetuneAtPolicy, loadWeights, trainFullPrecision } from '../src/train/run.js';
import { writeOutput } from '../src/util/fs.js';

const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const POLICY = join(REPO_ROOT, 'policies/mnist-cnn-w3a4-cr12.2.json');
const BEGIN = '<!-- bench:simulate begin (written by bench/simulate.ts) -->';
const END = '<!-- bench:simulate end -->';
const FP_EPOCHS = 2;
const GROUP_SIZE = 8;

export interface BenchSimulateOptions {
  from?: string;
  /** calibration sample draw and fine-tune seed */
  seed?: number;
  /** fine-tuning images for the packed policy (default: all 8,000) */
  ftLimit?: number;
  /** a checkpoint already fine-tuned at the policy: packed as it is, no fine-tuning */
  ft?: string;
  out?: string;
}

export async function benchSimulate(o: BenchSimulateOptions = {}): Promise<void> {
  const seed = o.seed ?? 7;
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const scratch = mkdtempSync(join(tmpdir(), 'mpq-bench-simulate-'));
  try {
    let from = o.from;
    let fpNote = `\`${from}\``;
    if (from === undefined) {
      from = join(scratch, 'fp');
      console.log(`simulate: training an FP model first (${FP_EPOCHS} epochs, seed ${seed})`);
      await trainFullPrecision({ model: 'mnist-cnn', epochs: FP_EPOCHS, seed, checkpoint: from, progress: false });
      fpNote = `trained by the bench (${FP_EPOCHS} epochs, seed ${seed})`;
    }
    const started = performance.now();
    const result = await runSimulation({
      model: 'mnist-cnn', from, settings: expandGrid(SEED_GRID), groupSize: GROUP_SIZE, numSample: 100, calibEpoch: 3, batchSize: 128, seed, log,
    });
    const table = simulateMarkdown(result, GROUP_SIZE);
    const gridSeconds = (performance.now() - started) / 1000;
    console.log(`simulate: seed table on mnist-cnn (${result.testCount} test digits, ${result.calibrationCount} calibration digits, ${gridSeconds.toFixed(0)} s)`);
    console.log(table);

    // the shipped policy, fine-tuned briefly (or as given), packed, loaded back
    const ft = o.ft ?? join(scratch, 'ft');
    const tuned = o.ft ? undefined : await finetuneAtPolicy({ model: 'mnist-cnn', from, policyPath: POLICY, epochs: 1, seed, limit: o.ftLimit, checkpoint: ft, progress: false });
    const provenance = o.ft ? `the checkpoint \`${o.ft}\` fine-tuned at it` : `fine-tuned 1 epoch (seed ${seed}${o.ftLimit ? `, ${o.ftLimit} digits` : ''}) from the same checkpoint`;
    const file = readPolicy(POLICY);
    const model = createModel('mnist-cnn', { bits: policyBits(file) });
    const policy = policyFromFile(model, file, POLICY);
    loadWeights(model, ft);
    const bytes = packModel(model, policy, { kind: 'lsq' });
    const packed = readPacked(bytes);
    const size = packedSize(bytes, packed);
    const test = loadDataset(model.inputShape, undefined, DATA_SPLIT_SEED).test;
    const fakeQuantized = evaluate(model, test, policy);
    const loaded = loadPackedModel(packed, 'packed');
    const fromPacked = evaluate(loaded.model, test, loaded.policy);
    disposeModel(model);
    disposeModel(loaded.model);
    const sizeLine = formatPackedSize('policies/mnist-cnn-w3a4-cr12.2.json packed', size);
    console.log(`simulate: ${sizeLine}`);
    console.log(`simulate: packed ${sameScore(fakeQuantized, fromPacked) ? 'equal' : 'DIFFERENT'} to fake-quantized: `
      + `top-1 ${fromPacked.top1} vs ${fakeQuantized.top1}, loss ${fromPacked.loss} vs ${fakeQuantized.loss}`
      + `${tuned ? `; finetune reported ${(100 * tuned.test.top1).toFixed(2)}%` : ''}`);

    if (o.out) {
      const section = [
        BEGIN,
        '',
        `FP checkpoint: ${fpNote}; FP top-1 ${(100 * result.fp.top1).toFixed(2)}% on ${result.testCount} test digits. Calibration: ${result.calibrationCount}`
          + ` training digits (100 per class, draw seed ${seed}), 3 naive passes, batch 128; group = ${GROUP_SIZE} output channels. ${gridSeconds.toFixed(0)} s on ${result.backend}.`,
        '',
        table.trimEnd(),
        '',
        packedParagraph({ provenance, size, fakeQuantized, fromPacked }),
        '',
        END,
      ].join('\n');
      const text = existsSync(o.out) ? readFileSync(o.out, 'utf8') : `${BEGIN}\n${END}\n`;
      const begin = text.indexOf(BEGIN);
      const end = text.indexOf(END);
      if (begin < 0 || end < begin) throw new Error(`${o.out}: no generated section (${BEGIN} … ${END})`);
      writeOutput(o.out, text.slice(0, begin) + section + text.slice(end + END.length));
      console.log(`simulate: wrote ${o.out}`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The packed model scores exactly as the fake-quantized one (the issue asks for equal outputs). */
const sameScore = (a: Evaluation, b: Evaluation) => a.top1 === b.top1 && a.loss === b.loss;
const thousands = (n: number) => Math.round(n).toLocaleString('en-US');
const percent = (x: number) => `${(100 * x).toFixed(2)}%`;

/**
 * The docs paragraph on the packed policy: the file against FP32 weights / compression ratio, where
 * its (uncompressed) bytes go, and the packed model's test score against the fake-quantized one's.
 */
export function packedParagraph(o: { provenance: string; size: PackedSize; fakeQuantized: Evaluation; fromPacked: Evaluation }): string {
  const { size: s, fakeQuantized: fq, fromPacked: pk } = o;
  const equal = sameScore(fq, pk);
  return [
    `Packed W3A4/CR12.2 policy, ${o.provenance}: **${thousands(s.fileBytes)} bytes**, the zlib (level 9) compression of a`,
    `${thousands(s.payloadBytes)}-byte payload = codes ${thousands(s.codeBytes)} + float32 state ${thousands(s.floatBytes)} + index ${thousands(s.indexBytes)}.`,
    `FP32 weights are ${thousands(s.fp32WeightBytes)} bytes and the policy's compression ratio ${s.compressionRatio.toFixed(2)}: FP32 / CR =`,
    `${thousands(s.targetBytes)} bytes, and the file is ${sizeVerdict(s)}`,
    `(uncompressed, the payload would be ${signedPercent(100 * (s.payloadBytes / s.targetBytes - 1))}).`,
    `Test top-1 on ${thousands(pk.count)} digits: checkpoint at the policy ${percent(fq.top1)} (loss ${fq.loss}),`,
    `\`mpq eval --packed\` ${percent(pk.top1)} (loss ${pk.loss}${equal ? ': equal' : ': **DIFFERENT**'}).`,
  ].join(' ').replace(/(.{1,96})(?: |$)/g, '$1\n').trimEnd();
}

/** --from, --ft, --seed, --ft-limit, --out from a command line. */
export function parseSimulateBenchArgs(argv: string[]): BenchSimulateOptions {
  const value = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const number = (name: string) => (value(name) === undefined ? undefined : Number(value(name)));
  return { from: value('--from'), ft: value('--ft'), seed: number('--seed'), ftLimit: number('--ft-limit'), out: value('--out') };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchSimulate(parseSimulateBenchArgs(process.argv.slice(2)));
}
