import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** The checkout (tests run from dist/test). */
export const REPO_ROOT = resolve(here, '../..');
/** LIMPQ's published ResNet-50 data, beside the checkout in ../shared (never copied in). */
export const REFERENCE_DIR = resolve(REPO_ROOT, '../shared/reference/limpq-resnet50');
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
