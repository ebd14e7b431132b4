import {
  accessSync, chmodSync, closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync,
  renameSync, rmSync, statSync, writeFileSync, writeSync, type Stats,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { FieldError, UserError } from './errors.js';

/**
 * Every file mpq reads or writes goes through here, so the rules hold everywhere:
 * - inputs are regular files (or symlinks to one) below a size bound, checked before reading: a
 *   directory, a device (`/dev/zero` would never end), a FIFO or a huge file is one line;
 * - outputs never destroy what is at their path: a regular file is replaced atomically (a temp file
 *   beside it, then a rename), a symlink is followed to its target, a character device, a FIFO and
 *   stdout (`-`, `/dev/stdout`) are written through, and a directory, block device or socket is
 *   refused;
 * - every failure is one line naming the path and the reason (UserError, exit 2), with the temp
 *   file removed; a command's several outputs are written all or none (writeOutputs).
 */

/** The largest JSON (or pickle) input mpq reads: 256 MiB. */
export const MAX_TEXT_INPUT_BYTES = 256 * 2 ** 20;
/** The largest binary input (checkpoint weights, packed models, datasets): node's Buffer limit. */
export const MAX_BINARY_INPUT_BYTES = 2 ** 31 - 1;

const REASONS: Record<string, string> = {
  EACCES: 'permission denied', EPERM: 'operation not permitted', EROFS: 'read-only file system', ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded', EISDIR: 'is a directory', ENOTDIR: 'a parent is not a directory', ENOENT: 'no such file or directory',
  ELOOP: 'too many symbolic links', ENAMETOOLONG: 'name too long', EIO: 'input/output error', EFBIG: 'file too large',
  ENXIO: 'no such device or address', EBUSY: 'device or resource busy', ETXTBSY: 'text file busy', EINVAL: 'invalid argument',
  EMFILE: 'too many open files', EXDEV: 'not on the same file system', EPIPE: 'broken pipe', EEXIST: 'already exists',
};

/** An fs error's reason in words with its code (`permission denied, EACCES`), on one line. */
export function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code !== undefined) return REASONS[code] ? `${REASONS[code]}, ${code}` : code;
  return String(err instanceof Error ? err.message : err).split('\n')[0]!;
}

const errCode = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | undefined)?.code;

function kindOf(s: Stats): string {
  if (s.isFile()) return 'regular file';
  if (s.isDirectory()) return 'directory';
  if (s.isCharacterDevice()) return 'character device';
  if (s.isBlockDevice()) return 'block device';
  if (s.isFIFO()) return 'FIFO';
  if (s.isSocket()) return 'socket';
  if (s.isSymbolicLink()) return 'symbolic link';
  return 'special file';
}

/**
 * The bytes of an input file. `what` names the kind of file in messages (`indicators`, `policy`).
 * Missing, a directory, not a regular file, larger than `maxBytes` or unreadable: one line.
 */
export function readInputFile(path: string, what: string, maxBytes = MAX_TEXT_INPUT_BYTES): Buffer {
  let st: Stats;
  try {
    st = statSync(path); // follows symlinks; opens nothing (opening a device or FIFO may block or act)
  } catch (err) {
    if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') throw new UserError(`${path}: no such ${what} file`);
    throw new UserError(`${path}: cannot read (${fsReason(err)})`);
  }
  checkInputStats(path, what, st, maxBytes);
  let fd: number | undefined;
  try {
    // O_NONBLOCK: should the path have become a FIFO since the stat, opening it does not wait for a writer
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    checkInputStats(path, what, fstatSync(fd), maxBytes);
    return readFileSync(fd);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`${path}: cannot read (${fsReason(err)})`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** `a policy`, `an indicators` */
const withArticle = (what: string): string => `${/^[aeiou]/i.test(what) ? 'an' : 'a'} ${what}`;

function checkInputStats(path: string, what: string, st: Stats, maxBytes: number): void {
  if (st.isDirectory()) throw new UserError(`${path}: is a directory, not ${withArticle(what)} file`);
  if (!st.isFile()) throw new UserError(`${path}: is a ${kindOf(st)}, not ${withArticle(what)} file (mpq reads regular files)`);
  if (st.size > maxBytes) throw new UserError(`${path}: ${st.size} bytes, more than ${withArticle(what)} file may have (${maxBytes})`);
}

/** Where one output goes once its path is looked at. */
type Target =
  | { kind: 'fd'; fd: number }
  | { kind: 'stream'; path: string }
  | { kind: 'replace'; path: string; mode?: number };

/** `-`, /dev/stdout and friends name an open descriptor: written to it, never opened or replaced. */
function descriptorOf(path: string): number | undefined {
  if (path === '-' || path === '/dev/stdout') return 1;
  if (path === '/dev/stderr') return 2;
  const m = /^\/(?:dev\/fd|proc\/self\/fd)\/(\d+)$/.exec(path);
  return m ? Number(m[1]) : undefined;
}

/** The path is stdout (`-`, /dev/stdout, /dev/fd/1). */
export const isStdout = (path: string): boolean => descriptorOf(path) === 1;

const cannotWrite = (path: string, err: unknown): UserError =>
  err instanceof UserError ? err : new UserError(`${path}: cannot write (${fsReason(err)})`);

function planOutput(path: string): Target {
  const fd = descriptorOf(path);
  if (fd !== undefined) return { kind: 'fd', fd };
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    if (errCode(err) === 'ENOTDIR') checkParent(path); // names the parent that is not a directory
    if (errCode(err) !== 'ENOENT') throw cannotWrite(path, err);
    checkParent(path);
    return { kind: 'replace', path };
  }
  let target = path;
  if (st.isSymbolicLink()) {
    try {
      st = statSync(path);
      if (st.isFile()) target = realpathSync(path); // the link stays; its target is replaced
    } catch (err) {
      if (errCode(err) === 'ENOENT') throw new UserError(`${path}: cannot write (a symbolic link to a missing file)`);
      throw cannotWrite(path, err);
    }
  }
  if (st.isFile()) {
    checkParent(target);
    return { kind: 'replace', path: target, mode: st.mode & 0o7777 };
  }
  if (st.isDirectory()) throw new UserError(`${path}: cannot write (is a directory; give a file name)`);
  if (st.isCharacterDevice() || st.isFIFO()) return { kind: 'stream', path };
  throw new UserError(`${path}: cannot write (a ${kindOf(st)}: mpq writes regular files, character devices and FIFOs)`);
}

/** The nearest existing folder above `path` must be a writable directory (the rest is made). */
function checkParent(path: string): void {
  let dir = dirname(resolve(path));
  for (;;) {
    let st: Stats;
    try {
      st = statSync(dir);
    } catch (err) {
      if (errCode(err) === 'ENOENT' && dirname(dir) !== dir) {
        dir = dirname(dir);
        continue;
      }
      throw cannotWrite(path, err);
    }
    if (!st.isDirectory()) throw new UserError(`${path}: cannot write (${dir} is a ${kindOf(st)}, not a directory)`);
    try {
      accessSync(dir, constants.W_OK | constants.X_OK);
    } catch (err) {
      throw new UserError(`${path}: cannot write in ${dir} (${fsReason(err)})`);
    }
    return;
  }
}

/**
 * Checks an output path without writing: what `writeOutputs` would refuse (a directory, a block
 * device, a path under a regular file, a folder it may not write in) is one line now, before a
 * command spends its time.
 */
export function checkOutputPath(path: string): void {
  planOutput(path);
}

/** Checks a folder mpq will write files into: it is a directory, or can be made. */
export function checkOutputDirectory(path: string, flag: string): void {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    if (errCode(err) !== 'ENOENT') throw new UserError(`${flag} ${path}: cannot use the folder (${fsReason(err)})`);
    checkParent(join(path, 'x'));
    return;
  }
  if (!st.isDirectory()) throw new UserError(`${flag} ${path}: not a directory (a ${kindOf(st)})`);
  try {
    accessSync(path, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new UserError(`${flag} ${path}: cannot write in the folder (${fsReason(err)})`);
  }
}

export interface OutputFile {
  path: string;
  data: string | Uint8Array;
}

/** A regular file is at `path` (an output written there replaces it). */
export function isExistingFile(path: string): boolean {
  if (isStdout(path)) return false;
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * A command whose output is the product of a long run (a pack, an export, pretrained indicators)
 * does not replace an earlier one without `overwrite`: one line naming the field (the CLI: its
 * flag) and the path.
 * Special files (stdout, devices) are written through, never refused.
 */
export function refuseExistingOutput(path: string, field: string): void {
  if (isExistingFile(path)) throw new FieldError((name) => `${name(field)} ${path}: already exists (a previous run's output); give ${name('overwrite')} to replace it`);
}

/** One output file (writeOutputs of one). */
export function writeOutput(path: string, data: string | Uint8Array): void {
  writeOutputs([{ path, data }]);
}

/**
 * A command's output files, all or none: every path is looked at first (refusals are one line and
 * nothing is written), then every regular file goes to a temp file beside its target, then the
 * streams are written, then the temp files are renamed over their targets. A failure before the
 * renames removes the temp files and leaves every target as it was.
 */
export function writeOutputs(files: readonly OutputFile[]): void {
  guardInterrupts();
  const planned = files.map((f) => ({ ...f, target: planOutput(f.path) }));
  const seen = new Set<string>();
  for (const p of planned) {
    const key = p.target.kind === 'fd' ? `fd:${p.target.fd}` : resolve(p.target.path);
    if (seen.has(key) && p.target.kind === 'replace') throw new UserError(`${p.path}: given for two outputs of one command`);
    seen.add(key);
  }
  const temps: Array<{ tmp: string; path: string; shown: string }> = [];
  try {
    for (const p of planned) {
      if (p.target.kind !== 'replace') continue;
      temps.push({ tmp: writeTemp(p.path, p.target.path, p.data, p.target.mode), path: p.target.path, shown: p.path });
    }
    for (const p of planned) {
      if (p.target.kind === 'fd') writeDescriptor(p.path, p.target.fd, p.data);
      else if (p.target.kind === 'stream') writeStream(p.path, p.data);
    }
    while (temps.length > 0) {
      const { tmp, path, shown } = temps[0]!;
      try {
        renameSync(tmp, path);
      } catch (err) {
        throw cannotWrite(shown, err);
      }
      temps.shift();
    }
  } finally {
    for (const { tmp } of temps) rmSync(tmp, { force: true });
  }
}

/** A temp file beside `target` holding `data` (mode kept from the file it will replace). */
function writeTemp(shown: string, target: string, data: string | Uint8Array, mode: number | undefined): string {
  const dir = dirname(target);
  makeDirectory(shown, dir);
  removeStaleTemps(dir, basename(target));
  const tmp = `${target}.${process.pid}.${Date.now()}${TEMP_SUFFIX}`;
  try {
    writeFileSync(tmp, data, { flag: 'wx' });
    if (mode !== undefined) chmodSync(tmp, mode);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw cannotWrite(shown, err);
  }
  return tmp;
}

/**
 * `dir` and its missing parents, one level at a time: node's recursive mkdir loops for ever where
 * mkdir says ENOENT under an existing folder (/proc).
 */
export function makeDirectory(shown: string, dir: string): void {
  const missing: string[] = [];
  for (let d = resolve(dir); ; d = dirname(d)) {
    try {
      if (statSync(d).isDirectory()) break;
      throw new UserError(`${shown}: cannot write (${d} is not a directory)`);
    } catch (err) {
      if (err instanceof UserError || errCode(err) !== 'ENOENT' || dirname(d) === d) throw cannotWrite(shown, err);
      missing.unshift(d);
    }
  }
  for (const d of missing) {
    try {
      mkdirSync(d);
    } catch (err) {
      if (errCode(err) !== 'EEXIST') throw cannotWrite(shown, err);
    }
  }
}

function writeAll(fd: number, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at, bytes.length - at);
}

/** A character device or FIFO: opened (never created or truncated) and written through. */
function writeStream(shown: string, data: string | Uint8Array): void {
  let fd: number | undefined;
  try {
    fd = openSync(shown, constants.O_WRONLY | constants.O_NOCTTY);
    writeAll(fd, data);
  } catch (err) {
    throw cannotWrite(shown, err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function writeDescriptor(shown: string, fd: number, data: string | Uint8Array): void {
  try {
    // node's own stdout/stderr streams (synchronous for files and pipes on Linux) keep output in order
    if (fd === 1) process.stdout.write(data);
    else if (fd === 2) process.stderr.write(data);
    else writeAll(fd, data);
  } catch (err) {
    throw cannotWrite(shown, err);
  }
}

const TEMP_SUFFIX = '.tmp';
/** `<target>.<pid>.<ms>.tmp`, the temp files writeTemp makes */
const TEMP_NAME = /^(.+)\.(\d+)\.(\d+)\.tmp$/;

/** A process `pid` is running (ours, or one we may not signal): its temp files are not stale. */
export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errCode(err) === 'EPERM';
  }
}

/**
 * Temp files a killed writer left in `dir` (of the target `name`, or of any target): those whose
 * process is gone are removed. A live writer's temp file is left alone.
 */
export function removeStaleTemps(dir: string, name?: string): void {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const entry of entries) {
    const m = TEMP_NAME.exec(entry);
    if (m && (name === undefined || m[1] === name) && !processAlive(Number(m[2]))) rmSync(join(dir, entry), { force: true });
  }
}

let interruptsWaitForWrites = false;
let guarded = false;

/**
 * For the CLI: from its first write on, SIGINT and SIGTERM end the process between writes (exit 130
 * / 143, one line), never inside one, so an interrupt leaves no torn file and no temp file. Before
 * the first write the default applies (an interrupt during a long computation stops it at once);
 * a command with its own handler (a sweep keeps its points) is left to it.
 */
export function finishWritesOnInterrupt(): void {
  interruptsWaitForWrites = true;
}

function guardInterrupts(): void {
  if (!interruptsWaitForWrites || guarded) return;
  guarded = true;
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(signal, () => {
      if (process.listenerCount(signal) > 1) return;
      process.stderr.write(`mpq: interrupted (${signal})\n`);
      process.exit(code);
    });
  }
}
