/**
 * Every quantizer on real MNIST: short fine-tunes from one FP checkpoint at uniform 8, 4 and 2
 * weight bits (lsq, nuq, qat, dorefa; naive at 8 only), and NUQ against LSQ on weights alone at 4,
 * 3 and 2 bits (the seed's claim: non-uniform is much better at low bits). Test top-1 on the
 * bundled mnist digits' 2,000-image test split. The tables replace the generated section of
 * docs/quantizers.md (or --out FILE), with the command and seed.
 *
 *   node dist/bench/quantizers.js [--from DIR] [--limit 2000] [--epochs 1] [--seed 1] [--out FILE] [--backend auto]
 *
 * Without --from, a full-precision model is trained first (2 epochs on the 8,000 training digits),
 * since a fresh clone has no checkpoint. --limit caps the fine-tuning images (and the test images,
 * which number 2,000).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { NuqInit, QuantizerName } from '../src/quant/index.js';
import type { BackendName } from '../src/train/backend/index.js';
import { evaluateCheckpoint, finetuneAtPolicy, trainFullPrecision } from '../src/train/run.js';
import { writeOutput } from '../src/util/fs.js';

export interface BenchQuantizersOptions {
  from?: string;
  limit?: number;
  epochs?: number;
  seed?: number;
  out?: string;
  backend?: BackendName;
}

export interface QuantizerRun {
  quantizer: QuantizerName;
  /** NUQ's initial points */
  init?: NuqInit;
  weightBits: number;
  actBits: number;
  top1: number;
  /** test images scored */
  count: number;
  seconds: number;
}

const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const DEFAULT_OUT = join(REPO_ROOT, 'docs/quantizers.md');
const BEGIN = '<!-- bench:quantizers begin (written by bench/quantizers.ts) -->';
const END = '<!-- bench:quantizers end -->';
const FP_EPOCHS = 2;

/** Activation convention per quantizer in the main table (A bits for W bits). */
const ACT_BITS: Record<QuantizerName, (w: number) => number> = {
  lsq: (w) => w, qat: (w) => w, nuq: () => 32, dorefa: () => 32, naive: () => 32,
};

export async function benchQuantizers(o: BenchQuantizersOptions = {}): Promise<QuantizerRun[]> {
  const seed = o.seed ?? 1;
  const epochs = o.epochs ?? 1;
  const limit = o.limit ?? 2000;
  const backend = o.backend ?? 'auto';
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const started = performance.now();
  let from = o.from;
  let scratch: string | undefined;
  let fpNote = `\`${from}\``;
  if (from === undefined) {
    scratch = mkdtempSync(join(tmpdir(), 'mpq-bench-quantizers-'));
    from = join(scratch, 'fp');
    console.log(`quantizers: training an FP model first (${FP_EPOCHS} epochs, seed ${seed})`);
    await trainFullPrecision({ model: 'mnist-cnn', epochs: FP_EPOCHS, seed, backend, checkpoint: from, progress: false });
    fpNote = `trained by the bench (${FP_EPOCHS} epochs, seed ${seed})`;
  }
  try {
    const fp = await evaluateCheckpoint({ model: 'mnist-cnn', from, backend, log });
    console.log(`quantizers: FP ${(100 * fp.test.top1).toFixed(2)}% on ${fp.test.count} test images`);
    const runs: QuantizerRun[] = [];
    const main: QuantizerRun[] = [];
    const run = async (quantizer: QuantizerName, weightBits: number, actBits: number, init?: NuqInit) => {
      const done = runs.find((r) => r.quantizer === quantizer && r.weightBits === weightBits && r.actBits === actBits && r.init === init);
      if (done) return done;
      const r = await finetuneAtPolicy({
        model: 'mnist-cnn', from, epochs, seed, limit, backend, progress: false, log: () => {},
        quantizer: { name: quantizer, ...(init && { nuq: { init } }) }, weightBits, actBits, quantizeFirstLast: true,
      });
      const result: QuantizerRun = { quantizer, ...(init && { init }), weightBits, actBits, top1: r.test.top1, count: r.test.count, seconds: r.seconds };
      console.log(`quantizers: ${quantizer}${init ? ` (${init} init)` : ''} W${weightBits}A${actBits} ${(100 * r.test.top1).toFixed(2)}% (${r.seconds.toFixed(0)} s)`);
      runs.push(result);
      return result;
    };
    for (const bits of [8, 4, 2]) {
      for (const q of ['lsq', 'nuq', 'qat', 'dorefa'] as const) main.push(await run(q, bits, ACT_BITS[q](bits)));
      if (bits === 8) main.push(await run('naive', 8, 32));
    }
    const versus: Array<[number, QuantizerRun, QuantizerRun, QuantizerRun]> = [];
    for (const bits of [4, 3, 2]) versus.push([bits, await run('nuq', bits, 32), await run('nuq', bits, 32, 'uniform'), await run('lsq', bits, 32)]);
    const minutes = (performance.now() - started) / 60000;
    const command = ['node', relative(REPO_ROOT, process.argv[1] ?? 'dist/bench/quantizers.js'), ...process.argv.slice(2)].join(' ');
    const section = formatSection({ main, versus, fpTop1: fp.test.top1, testCount: main[0]!.count, fpNote, limit, epochs, seed, backend: fp.backend, minutes, command });
    const out = o.out ?? DEFAULT_OUT;
    writeSection(out, section);
    console.log(`quantizers: ${runs.length} fine-tunes in ${minutes.toFixed(1)} min; tables written to ${out}`);
    return runs;
  } finally {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
}

const pct = (x: number) => (100 * x).toFixed(2);

function formatSection(r: {
  main: QuantizerRun[]; versus: Array<[number, QuantizerRun, QuantizerRun, QuantizerRun]>; fpTop1: number; testCount: number; fpNote: string;
  limit: number; epochs: number; seed: number; backend: string; minutes: number; command: string;
}): string {
  const activation = (q: QuantizerRun) => (q.actBits >= 32 ? 'FP' : String(q.actBits));
  const lines = [
    BEGIN,
    `Measured ${new Date().toISOString().slice(0, 10)} with \`${r.command}\` (seed ${r.seed}, backend ${r.backend}, ${r.minutes.toFixed(1)} min on this 2-core machine).`,
    `Each row: ${r.epochs} fine-tuning epoch${r.epochs > 1 ? 's' : ''} (batch 64, lr 0.01 cosine) on the first ${r.limit} of the 8,000 training digits (\`--limit ${r.limit}\`), from the FP checkpoint ${r.fpNote} (FP top-1 ${pct(r.fpTop1)}% on the 2,000 test digits), then top-1 on ${r.testCount} test digits.`,
    'Searchable layers (conv2–conv5) at the W bits; the first and last layers at 8 bits by the same quantizer, for every quantizer (NUQ included, whose own default leaves them in FP).',
    'Activations by each quantizer\'s convention: LSQ and QAT at the weight bits (LSQ steps, QAT EMA min/max); NUQ at FP (PocketFlow\'s default); DoReFa and naive quantize weights only.',
    '',
    '| quantizer | W bits | A bits | top-1 % | Δ vs FP | s |',
    '|---|---:|---:|---:|---:|---:|',
    ...r.main.map((q) =>
      `| ${q.quantizer} | ${q.weightBits} | ${activation(q)} | ${pct(q.top1)} | ${(100 * (q.top1 - r.fpTop1)).toFixed(2)} | ${q.seconds.toFixed(0)} |`),
    '',
    'NUQ against uniform LSQ, weights only (activations FP), same runs otherwise; NUQ with the seed\'s quantile initial points and with uniform ones:',
    '',
    '| W bits | NUQ quantile top-1 % | NUQ uniform top-1 % | LSQ top-1 % | NUQ quantile − LSQ | NUQ uniform − LSQ |',
    '|---:|---:|---:|---:|---:|---:|',
    ...r.versus.map(([bits, quantile, uniform, lsq]) => `| ${bits} | ${pct(quantile.top1)} | ${pct(uniform.top1)} | ${pct(lsq.top1)} | ${(100 * (quantile.top1 - lsq.top1)).toFixed(2)} | ${(100 * (uniform.top1 - lsq.top1)).toFixed(2)} |`),
    END,
  ];
  return lines.join('\n');
}

/** Replace the generated section of `path` (or append it), atomically. */
function writeSection(path: string, section: string): void {
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const begin = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  const next = begin >= 0 && end > begin
    ? `${text.slice(0, begin)}${section}${text.slice(end + END.length)}`
    : `${text}${text && !text.endsWith('\n\n') ? '\n' : ''}${section}\n`;
  writeOutput(path, next);
}

export function parseQuantizerBenchArgs(argv: string[]): BenchQuantizersOptions {
  const o: BenchQuantizersOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    const number = (min = 1) => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < min) throw new Error(`${argv[i]}: expected an integer >= ${min}, got ${value}`);
      i++;
      return n;
    };
    switch (argv[i]) {
      case '--from': o.from = value; i++; break;
      case '--out': o.out = value; i++; break;
      case '--backend': o.backend = value as BackendName; i++; break;
      case '--limit': o.limit = number(); break;
      case '--epochs': o.epochs = number(); break;
      case '--seed': o.seed = number(0); break;
      default: break; // other benches' flags
    }
  }
  return o;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchQuantizers(parseQuantizerBenchArgs(process.argv.slice(2)));
}
