#!/usr/bin/env node
/**
 * Builds mpq's optional native kernels (this directory: a Node-API addon on oneDNN) with cmake-js
 * against node-api-headers, so nothing is downloaded. Run by `npm ci` / `npm install` (the package's
 * install script) and by `npm run build:native`. It never fails the install: without a compiler,
 * cmake, libdnnl-dev or cmake-js it says why in one line, records it in build/status.json (mpq
 * repeats it when it picks a backend), and training runs on wasm.
 * MPQ_NATIVE=0 skips the build.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, 'build');
const addon = path.join(out, 'Release', 'mpq_dnnl.node');
const log = path.join(out, 'build.log');

/** Records the outcome (written whole, then renamed), says it in one line, and exits 0. */
function finish(built, reason, details = {}) {
  fs.mkdirSync(out, { recursive: true });
  const status = path.join(out, 'status.json');
  fs.writeFileSync(`${status}.tmp`, `${JSON.stringify({ built, reason, ...details, at: new Date().toISOString() })}\n`);
  fs.renameSync(`${status}.tmp`, status);
  console.log(built
    ? `mpq: native kernels built (oneDNN ${details.onednn}): training uses them`
    : `mpq: native kernels not built: ${reason}; training runs on wasm (README: Native kernels)`);
  process.exit(0);
}

const works = (command, args) => spawnSync(command, args, { stdio: 'ignore' }).status === 0;

if (process.env.MPQ_NATIVE === '0') finish(false, 'MPQ_NATIVE=0');
if (process.platform !== 'linux' || process.arch !== 'x64') finish(false, `built on Linux x86-64 only, this is ${process.platform} ${process.arch}`);
let cmakeJs;
try {
  cmakeJs = createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js');
} catch {
  finish(false, 'cmake-js (an optional dependency) is not installed');
}
if (!works('cmake', ['--version'])) finish(false, 'cmake was not found (Debian: apt-get install cmake)');
if (!works(process.env.CXX ?? 'c++', ['--version'])) finish(false, 'no C++ compiler was found (Debian: apt-get install g++)');

fs.mkdirSync(out, { recursive: true });
const build = spawnSync(process.execPath, [cmakeJs, 'compile', '--directory', here, '--out', out], { encoding: 'utf8' });
fs.writeFileSync(log, `${build.stdout ?? ''}${build.stderr ?? ''}`);
if (build.status !== 0) {
  // CMakeLists.txt words its own failures "MPQ_NATIVE: <why>"
  const why = /MPQ_NATIVE: ([^\n]*)/.exec(`${build.stdout}${build.stderr}`)?.[1]?.trim();
  finish(false, why ?? `the build failed (${path.relative(process.cwd(), log)})`);
}
// Built: it must also load (a missing shared library shows only here).
const probe = spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(addon)}).version().onednn)`], { encoding: 'utf8' });
if (probe.status !== 0) finish(false, `built but does not load: ${(probe.stderr ?? '').trim().split('\n')[0]}`);
finish(true, undefined, { onednn: probe.stdout.trim() });
