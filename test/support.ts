import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** The checkout (tests run from dist/test). */
export const REPO_ROOT = resolve(here, '../..');
/** LIMPQ's published ResNet-50 data, beside the checkout in ../shared (never copied in), or at $MPQ_REFERENCE (a checkout elsewhere, e.g. a worktree). */
export const REFERENCE_DIR = process.env.MPQ_REFERENCE ?? resolve(REPO_ROOT, '../shared/reference/limpq-resnet50');
export const HAS_REFERENCE = existsSync(join(REFERENCE_DIR, 'indicators.json'));
export const CLI_MAIN = join(REPO_ROOT, 'dist/src/cli/main.js');

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run the built CLI as a user would, optionally in another working directory. */
export function runCli(args: string[], cwd = REPO_ROOT): CliRun {
  const r = spawnSync(process.execPath, [CLI_MAIN, ...args], { encoding: 'utf8', cwd });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function tempDir(prefix = 'mpq-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * A small search input of our own, written to `dir`: 4 searchable layers (c1 with its shape, for
 * the RL state), a fixed stem and classifier, and indicators that grow as bits shrink.
 */
export function writeTinySearchInputs(dir: string): { model: string; indicators: string } {
  const model = join(dir, 'tiny.json');
  writeFileSync(model, JSON.stringify({
    model: 'tiny',
    layers: [
      { name: 'c1', params: 1000, macs: 100000, kind: 'conv', in_channels: 3, out_channels: 16, kernel: [3, 3], stride: 1 },
      { name: 'c2', params: 4000, macs: 200000 },
      { name: 'c3', params: 8000, macs: 50000 },
      { name: 'c4', params: 2000, macs: 400000 },
    ],
    fixed: [{ name: 'stem', params: 100, macs: 30000, weight_bits: 8, act_bits: 8 }, { name: 'fc', params: 200, macs: 200, weight_bits: 8, act_bits: 8 }],
  }));
  const steps = (k: number) => ({ '6': 0.01 * k, '5': 0.02 * k, '4': 0.04 * k, '3': 0.08 * k, '2': 0.2 * k });
  const indicators = join(dir, 'tiny-ind.json');
  writeFileSync(indicators, JSON.stringify({
    weight: { c1: steps(1), c2: steps(2), c3: steps(0.5), c4: steps(1.5) },
    act: { c1: steps(2), c2: steps(1), c3: steps(1), c4: steps(3) },
    layer_name: ['c1', 'c2', 'c3', 'c4'],
    meta: { model, seed: 3 },
  }));
  return { model, indicators };
}

/** Relative gap between two tensors' values: max |a − b| over max |b| (lengths must match). */
export function relativeGap(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`relativeGap: ${actual.length} values against ${expected.length}`);
  let gap = 0;
  let scale = 0;
  for (let i = 0; i < actual.length; i++) {
    gap = Math.max(gap, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return gap / Math.max(scale, 1e-30);
}
